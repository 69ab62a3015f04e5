-- marts.table_age_groups: what only definitions §5 `age_groups` (Faxe Table 2) has: its
-- columns, the age bands of the config (§4) in order, and the profile groups in each; rows
-- are profiles. A citizen without an age band (no birth year) counts in `unknown`, a column
-- shown only when non-zero, so that the rows still add up to the profile totals.
-- Grain: one row per column × profile group in it; a column without one has a single row with
-- no `row`. marts.table_cells builds the grid, zeros and totals of every table from these.
-- Parameters: $age_band_codes (the config's bands, in order).
select col, col_order, col = 'unknown' as shown_only_when_non_zero, profile as "row", n
from unnest(list_append($age_band_codes::varchar[], 'unknown'))
    with ordinality as columns(col, col_order)
left join marts.profile_groups on coalesce(profile_groups.age_band, 'unknown') = columns.col
