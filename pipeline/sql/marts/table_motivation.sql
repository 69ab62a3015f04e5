-- marts.table_motivation: definitions §5 `motivation` (Faxe Table 8), one row per cell:
-- profile (depth order) × motivation as recorded, plus `motivation_not_stated` (no motivation
-- flag set, data contract). Multi-response; the total column counts citizens.
-- Parameters: $profile_codes (profile codes in depth order, from the rules file).
with

citizens as (

    select * from marts.citizens
    where in_scope and profile_source <> 'unreviewed' and profile is not null

),

row_codes as (

    select code as "row", i as row_order
    from unnest($profile_codes::varchar[]) with ordinality as t(code, i)

),

col_codes as (

    select code as col, i as col_order
    from unnest(['motivation_overcomes_barriers', 'motivation_work', 'motivation_education', 'motivation_none', 'motivation_pension', 'motivation_not_stated']) with ordinality as t(code, i)

),

members as (

    select citizen_id, profile as "row" from citizens

),

flag_ticks as (

    unpivot (
        select
            citizen_id,
            profile as "row",
            motivation_overcomes_barriers,
            motivation_work,
            motivation_education,
            motivation_none,
            motivation_pension
        from citizens
    )
    on
        motivation_overcomes_barriers,
        motivation_work,
        motivation_education,
        motivation_none,
        motivation_pension
    into name col value ticked

),

ticks as (

    select citizen_id, "row", col from flag_ticks where ticked
    union all
    select citizen_id, profile as "row", 'motivation_not_stated' as col from citizens where not (motivation_overcomes_barriers or motivation_work or motivation_education or motivation_none or motivation_pension)

),

cells as (

    -- every cell of the grid, zeros included (§5)
    select
        row_codes."row",
        col_codes.col,
        row_codes.row_order,
        col_codes.col_order,
        count(ticks.citizen_id)::bigint as n
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
        count(members.citizen_id)::bigint as n
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
