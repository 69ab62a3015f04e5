-- meta.row_counts: the rows each input table gave, as ingest stored them. Grain: one row per
-- input table. Data contract: rows read = rows loaded + rows quarantined (a quarantined row
-- counts once, however many of its cells are wrong); checked by
-- checks/meta__row_counts__reconcile.sql. The manifest and a later report read the counts
-- here instead of counting the layers again.
with

counts as (

    select
        'citizens' as table_name,
        (select count(*) from raw.citizens) as rows_read,
        (select count(*) from staging.citizens) as rows_loaded,
        (select count(distinct (_file, _line)) from quarantine.citizen_problems)
            as rows_quarantined
    union all
    select
        'episodes',
        (select count(*) from raw.episodes),
        (select count(*) from staging.episodes),
        (select count(distinct (_file, _line)) from quarantine.episode_problems)

)

select * from counts
