-- marts.table_m3_duration: definitions §5 `m3_duration` ("about half more than a year in
-- M3"), one row per cell: profile (depth order) × M3 duration band (§3), totals included.
-- Parameters: $profile_codes (profile codes in depth order, from the rules file).
with

profile_groups as (

    -- the tabulated citizens (in scope, with a profile), counted by group
    select * from marts.profile_groups

),

row_codes as (

    select code as "row", i as row_order
    from unnest($profile_codes::varchar[]) with ordinality as t(code, i)

),

col_codes as (

    select code as col, i as col_order
    from unnest(['under_1y', '1_to_2y', '2y_plus', 'not_in_m3']) with ordinality as t(code, i)

),

members as (

    select profile as "row", n from profile_groups

),

ticks as (

    select profile as "row", m3_band as col, n from profile_groups

),

cells as (

    -- every cell of the grid, zeros included (§5)
    select
        row_codes."row",
        col_codes.col,
        row_codes.row_order,
        col_codes.col_order,
        coalesce(sum(ticks.n), 0)::bigint as n
    from row_codes
    cross join col_codes
    left join ticks on ticks."row" = row_codes."row" and ticks.col = col_codes.col
    group by all

),

row_totals as (

    -- the total column counts citizens, not ticks (§5, multi-response tables)
    select
        row_codes."row",
        'total' as col,
        row_codes.row_order,
        9999 as col_order,
        coalesce(sum(members.n), 0)::bigint as n
    from row_codes
    left join members using ("row")
    group by all

),

body as (

    select * from cells
    union all
    select * from row_totals

),

total_row as (

    -- each citizen is in exactly one row, so the total row is the sum of the rows
    select 'total' as "row", col, 9999 as row_order, col_order, sum(n)::bigint as n
    from body
    group by all

),

with_totals as (

    select * from body
    union all
    select * from total_row

),

final as (

    select * from with_totals

)

select * from final
