-- marts.table_m3_duration: what only definitions §5 `m3_duration` ("about half more than a
-- year in M3") has: its columns, the M3 duration bands (§3) in display order, and the
-- profile groups in each; rows are profiles. `not_in_m3` is shown only when non-zero (§5):
-- under the default scope (`scope = "m3"`) a citizen in scope is out of M3 only when the
-- match-group cell says M3 and no M3 episode covers the reference date (§3), so the column
-- is nearly always zero in every row.
-- Grain: one row per column × profile group in it; a column without one has a single row with
-- no `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, col = 'not_in_m3' as shown_only_when_non_zero, profile as "row", n
from unnest(['under_1y', '1_to_2y', '2y_plus', 'not_in_m3'])
    with ordinality as columns(col, col_order)
left join marts.profile_groups on profile_groups.m3_band = columns.col
