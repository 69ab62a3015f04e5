-- marts.table_cells: every cell of every table of definitions §5, totals included, with its
-- unsuppressed count and share. Grain: one row per table × row × column. Internal: the
-- published numbers are in marts.published_cells.
-- Share (a reading where §5 is silent): a cell's share of its row total (within a profile);
-- a total-column cell's share of the grand total (the profile's share of all citizens).
-- No parameters: reads the marts.table_* models.
with

tables as (

    select 'profile_distribution' as table_id, 1 as table_order, 'profile' as row_dim,
           false as multi_response, *
    from marts.table_profile_distribution
    union all
    select 'course_history', 2, 'profile', false, * from marts.table_course_history
    union all
    select 'age_groups', 3, 'profile', false, * from marts.table_age_groups
    union all
    select 'case_focus', 4, 'profile', true, * from marts.table_case_focus
    union all
    select 'misuse', 5, 'base_profile', true, * from marts.table_misuse
    union all
    select 'motivation', 6, 'profile', true, * from marts.table_motivation
    union all
    select 'm3_duration', 7, 'profile', false, * from marts.table_m3_duration
    union all
    select 'barriers', 8, 'profile', true, * from marts.table_barriers

),

with_denominator as (

    select
        *,
        case when col = 'total' then 'total' else "row" end as denominator_row,
        'total' as denominator_col
    from tables

),

shares as (

    select
        cell.table_id,
        cell.table_order,
        cell.row_dim,
        cell.multi_response,
        cell."row",
        cell.col,
        cell.row_order,
        cell.col_order,
        cell.n,
        cell.denominator_row,
        cell.denominator_col,
        denominator.n as denominator,
        cell.n / nullif(denominator.n, 0) as share
    from with_denominator as cell
    join tables as denominator
        on denominator.table_id = cell.table_id
        and denominator."row" = cell.denominator_row
        and denominator.col = cell.denominator_col

),

final as (

    select * from shares
    order by table_order, row_order, col_order

)

select * from final
