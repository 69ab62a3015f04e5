-- marts.table_misuse: what only definitions §5 `misuse` (Faxe Tables 4, 7) has: its rows are
-- base profiles (§1, the view without the misuse rules); its columns misuse yes by kind
-- (alcohol, soft_drugs, hard_drugs: multi-response) and `misuse_no` (none of them), with how
-- many citizens of each profile group tick each.
-- Grain: one row per column × profile group; a column without one has a single row with no
-- `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- No parameters.
select col, col_order, base_profile as "row", n
from unnest(['alcohol', 'soft_drugs', 'hard_drugs', 'misuse_no'])
    with ordinality as columns(col, col_order)
left join marts.profile_group_flags on profile_group_flags.flag = columns.col
