-- marts.published_cells: the cells of every table as published (definitions §6), with the
-- reason a cell is hidden (`primary` / `secondary`: internal, never in a published file).
-- Grain: one row per table × row × column, totals included.
-- A count is shown unless hidden; a share only when its count and its denominator are shown.
-- Reads marts.release_cells (the tables at the level of coarsening chosen) and
-- marts.suppressed_cells (the pattern `report.py` chose with pipeline.suppression).
-- No parameters.
with

table_cells as (

    select * from marts.release_cells

),

suppressed_cells as (

    select * from marts.suppressed_cells

),

flagged as (

    select
        table_cells.*,
        suppressed_cells.reason,
        suppressed_cells.reason is not null as hidden
    from table_cells
    left join suppressed_cells using (table_id, "row", col)

),

published as (

    select
        cell.*,
        denominator.hidden as denominator_hidden,
        case when not cell.hidden then cell.n end as n_published,
        case when not cell.hidden and not denominator.hidden then cell.share end
            as share_published
    from flagged as cell
    join flagged as denominator
        on denominator.table_id = cell.table_id
        and denominator."row" = cell.denominator_row
        and denominator.col = cell.denominator_col

),

final as (

    select * from published
    order by table_order, row_order, col_order

)

select * from final
