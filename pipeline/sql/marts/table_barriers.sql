-- marts.table_barriers: definitions §5 `barriers` (Faxe's holistic view, Varde's catalog), one
-- row per cell: profile (depth order) × barrier outside the job centre. Multi-response; the
-- total column counts citizens.
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
    from unnest(['barrier_housing', 'barrier_economy', 'barrier_transport', 'barrier_children', 'barrier_language', 'barrier_isolation']) with ordinality as t(code, i)

),

members as (

    select profile as "row", n from profile_groups

),

ticks as (

    -- one row per group × column with its count: the groups are counted already, so this
    -- unpivots a few hundred rows, not one row per citizen
    unpivot (
        select
            profile as "row",
            barrier_housing,
            barrier_economy,
            barrier_transport,
            barrier_children,
            barrier_language,
            barrier_isolation
        from profile_groups
    )
    on
        barrier_housing,
        barrier_economy,
        barrier_transport,
        barrier_children,
        barrier_language,
        barrier_isolation
    into name col value n

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
