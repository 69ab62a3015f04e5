-- marts.table_case_focus: what only definitions §5 `case_focus` (Faxe Table 3) has: its
-- columns, the focus of the case work in display order, and how many citizens of each
-- profile group tick each; rows are profiles. Multi-response: a citizen ticks every focus
-- recorded, so the total column (made by marts.table_cells) counts citizens, not ticks.
-- Grain: one row per column × profile group; a column without one has a single row with no
-- `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, profile as "row", n
from unnest([
    'focus_ordinary_work', 'focus_upskilling', 'focus_support_scheme', 'focus_activation',
    'focus_physical_treatment', 'focus_psych_treatment', 'focus_misuse_treatment',
    'focus_rest', 'focus_pension_case'
]) with ordinality as columns(col, col_order)
left join marts.profile_group_flags on profile_group_flags.flag = columns.col
