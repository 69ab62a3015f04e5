-- data contract: rows read = rows loaded + rows quarantined, per table.
with counts as (
    select 'citizens' as table_name,
        (select count(*) from raw.citizens) as n_read,
        (select count(*) from staging.citizens) as n_loaded,
        (select count(distinct (_file, _line)) from quarantine.citizen_problems) as n_quarantined
    union all
    select 'episodes',
        (select count(*) from raw.episodes),
        (select count(*) from staging.episodes),
        (select count(distinct (_file, _line)) from quarantine.episode_problems)
)

select * from counts where n_read <> n_loaded + n_quarantined
