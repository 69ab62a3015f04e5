-- marts.table_profile_distribution: definitions §5 `profile_distribution`, one row per
-- cell: profile (depth order) × the single column `total`, plus the grand total.
-- Population: in-scope citizens with a profile (§1: unreviewed citizens are kept out).
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

members as (

    select citizen_id, profile as "row" from citizens

),

row_totals as (

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

total_row as (

    select 'total' as "row", col, 9999 as row_order, col_order, sum(n)::bigint as n
    from row_totals
    group by all

),

final as (

    select * from row_totals
    union all
    select * from total_row

)

select * from final
