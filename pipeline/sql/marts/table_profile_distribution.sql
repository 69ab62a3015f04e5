-- marts.table_profile_distribution: definitions §5 `profile_distribution`, one row per
-- cell: profile (depth order) × the single column `total`, plus the grand total.
-- Population: in-scope citizens with a profile (§1: unreviewed citizens are kept out).
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

members as (

    select profile as "row", n from profile_groups

),

row_totals as (

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
