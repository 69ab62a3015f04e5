-- §6: no published count from 1 to min_cell - 1 (zero is shown; min_cell = 0 switches
-- suppression off, so nothing is too small). Returns the offending cells.
select table_id, "row", col, n_published
from marts.published_cells
where n_published between 1 and $min_cell - 1
