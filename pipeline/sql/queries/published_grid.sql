-- Every cell as published (marts.published_cells), in report order: table, row, column, and
-- what a reader sees (the count and share unless hidden; whether the share is hidden
-- because its count or its denominator is).
select
    table_id,
    row_dim,
    multi_response,
    "row",
    col,
    {
        'n': n_published,
        'share': share_published,
        'hidden': hidden,
        'share_hidden': hidden or denominator_hidden
    } as cell
from marts.published_cells
order by table_order, row_order, col_order
