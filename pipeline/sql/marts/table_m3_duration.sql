-- marts.table_m3_duration: what only definitions §5 `m3_duration` ("about half more than a
-- year in M3") has: its columns, the M3 duration bands (§3) in display order, and the
-- profile groups in each; rows are profiles.
-- Grain: one row per column × profile group in it; a column without one has a single row with
-- no `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, profile as "row", n
from unnest(['under_1y', '1_to_2y', '2y_plus', 'not_in_m3'])
    with ordinality as columns(col, col_order)
left join marts.profile_groups on profile_groups.m3_band = columns.col
