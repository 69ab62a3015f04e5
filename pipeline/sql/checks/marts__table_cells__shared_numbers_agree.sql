-- A number that recurs in several tables is the same number in all of them (§5, §6): the
-- grand total equals the count of tabulated citizens everywhere, and the row total of a
-- profile is the same in every table with that row dimension. Returns the disagreements.
with

table_cells as (

    select * from marts.table_cells

),

tabulated as (

    -- §1: in-scope citizens with a profile; unreviewed citizens are kept out
    select count(*) as n
    from marts.citizens
    where in_scope and profile_source <> 'unreviewed' and profile is not null

),

grand_totals as (

    select table_id, 'total' as "row", n, (select n from tabulated) as expected
    from table_cells
    where "row" = 'total' and col = 'total'

),

row_totals as (

    select table_id, row_dim, "row", n,
           min(n) over (partition by row_dim, "row") as low,
           max(n) over (partition by row_dim, "row") as high
    from table_cells
    where col = 'total' and "row" <> 'total'

),

bad as (

    select * from grand_totals where n <> expected
    union all
    select table_id, "row", n, low as expected from row_totals
    where low <> high

)

select * from bad
