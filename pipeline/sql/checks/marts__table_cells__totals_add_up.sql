-- Totals are the sums of their rows (§5): every column's total row is the sum of its rows;
-- in an additive table every row's total column is the sum of its columns; in a
-- multi-response table no cell exceeds its row total (a citizen ticks a column at most once).
-- Returns the cells whose total disagrees.
with

table_cells as (

    select * from marts.table_cells

),

column_sums as (

    select table_id, col, sum(n) filter (where "row" <> 'total') as summed,
           any_value(n) filter (where "row" = 'total') as total
    from table_cells
    group by table_id, col

),

row_sums as (

    select table_id, "row", sum(n) filter (where col <> 'total') as summed,
           any_value(n) filter (where col = 'total') as total
    from table_cells
    where not multi_response
      and table_id in (select table_id from table_cells where col <> 'total')
    group by table_id, "row"

),

over_row_total as (

    select cell.table_id, cell."row", cell.col, cell.n as summed, total.n as total
    from table_cells as cell
    join table_cells as total
        on total.table_id = cell.table_id and total."row" = cell."row" and total.col = 'total'
    where cell.multi_response and cell.col <> 'total' and cell.n > total.n

),

bad as (

    select table_id, 'total' as "row", col, summed, total from column_sums
    where summed is distinct from total
    union all
    select table_id, "row", 'total' as col, summed, total from row_sums
    where summed is distinct from total
    union all
    select * from over_row_total

)

select * from bad
