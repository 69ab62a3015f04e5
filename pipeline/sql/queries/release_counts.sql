-- What a release hid (counts of cells, by reason: internal) and how many citizens its tables
-- describe (the grand total of profile_distribution). One row.
select
    count(*) filter (where reason = 'primary') as hidden_primary,
    count(*) filter (where reason = 'secondary') as hidden_secondary,
    (
        select n from marts.table_cells
        where table_id = 'profile_distribution' and "row" = 'total' and col = 'total'
    ) as tabulated
from marts.suppressed_cells
