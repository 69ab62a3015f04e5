-- marts.table_barriers: what only definitions §5 `barriers` (Faxe's holistic view, Varde's
-- catalog) has: its columns, the barriers outside the job centre in display order, and how
-- many citizens of each profile group tick each; rows are profiles. Multi-response.
-- Grain: one row per column × profile group; a column without one has a single row with no
-- `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, profile as "row", n
from unnest([
    'barrier_housing', 'barrier_economy', 'barrier_transport', 'barrier_children',
    'barrier_language', 'barrier_isolation'
]) with ordinality as columns(col, col_order)
left join marts.profile_group_flags on profile_group_flags.flag = columns.col
