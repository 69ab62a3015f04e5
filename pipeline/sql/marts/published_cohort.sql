-- marts.published_cohort: the cohort table as published (definitions §8.5, §6). Grain and
-- columns of marts.cohort_cells, with `hidden` and its reason (internal), `n_published`
-- (null when hidden) and `share_published`: the share of the profile's cohort (of the
-- whole cohort in the total row), shown only when the count and the cohort are shown. The
-- published files print the Wilson interval of a share only beside it (pipeline.movement).
-- Reads marts.cohort_cells and marts.suppressed_cells (the one pattern of the release).
-- No parameters.
with

cells as (

    select * from marts.cohort_cells

),

suppressed as (

    select * from marts.suppressed_cells

),

flagged as (

    select
        cells.*,
        suppressed.reason,
        suppressed.reason is not null as hidden
    from cells
    left join suppressed
        on suppressed.table_id = cells.cell_table
        and suppressed."row" = cells.cell_row
        and suppressed.col = cells.cell_col

),

final as (

    select
        cell.*,
        cohort.n as cohort_n,
        case when not cell.hidden then cell.n end as n_published,
        case when not cell.hidden and not cohort.hidden and cohort.n > 0
            then cell.n / cohort.n end as share_published
    from flagged as cell
    join flagged as cohort
        on cohort.horizon = cell.horizon
        and cohort.profile = cell.profile
        and cohort.status = 'total'
    order by cell.horizon_order, cell.profile_order, cell.status_order

)

select * from final
