-- marts.table_course_history: what only definitions §5 `course_history` (Faxe Tables 1, 5, 6)
-- has: its columns, the course history classes (§2) in display order, and the profile
-- groups in each; rows are profiles. `no_history` is shown only when non-zero (§2).
-- Grain: one row per column × profile group in it; a column without one has a single row with
-- no `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, col = 'no_history' as shown_only_when_non_zero, profile as "row", n
from unnest(['long_continuous', 'short_continuous', 'several_separate', 'no_history'])
    with ordinality as columns(col, col_order)
left join marts.profile_groups on profile_groups.course_class = columns.col
