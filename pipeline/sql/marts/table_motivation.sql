-- marts.table_motivation: what only definitions §5 `motivation` (Faxe Table 8) has: its
-- columns, the motivation as recorded in display order plus `motivation_not_stated` (no
-- motivation flag set, data contract), and how many citizens of each profile group tick
-- each; rows are profiles. Multi-response.
-- Grain: one row per column × profile group; a column without one has a single row with no
-- `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, profile as "row", n
from unnest([
    'motivation_overcomes_barriers', 'motivation_work', 'motivation_education',
    'motivation_none', 'motivation_pension', 'motivation_not_stated'
]) with ordinality as columns(col, col_order)
left join marts.profile_group_flags on profile_group_flags.flag = columns.col
