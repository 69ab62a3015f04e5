-- Every table has every cell of its grid, zeros included, and no missing count (§5).
-- Returns the incomplete tables.
with

table_cells as (

    select * from marts.table_cells

),

shape as (

    select
        table_id,
        count(*) as cells,
        count(distinct "row") * count(distinct col) as grid,
        count(*) filter (where n is null) as missing
    from table_cells
    group by table_id

)

select * from shape
where cells <> grid or missing > 0
