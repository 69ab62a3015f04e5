-- What a release hid (counts of the tables' cells, by reason: internal; the headline's
-- numbers, which suppressed_cells also holds, are no table's) and how many citizens its
-- tables describe (the grand total of profile_distribution). One row.
select
    count(*) filter (where reason = 'primary') as hidden_primary,
    count(*) filter (where reason = 'secondary') as hidden_secondary,
    (
        select n from marts.table_cells
        where table_id = 'profile_distribution' and "row" = 'total' and col = 'total'
    ) as tabulated
from marts.suppressed_cells
where table_id in (select distinct table_id from marts.table_cells)
