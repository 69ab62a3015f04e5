-- §6: a share is shown only when both its count and its denominator are shown.
-- Returns the shares that would reveal a hidden number.
select table_id, "row", col, share_published, hidden, denominator_hidden
from marts.published_cells
where share_published is not null and (hidden or denominator_hidden)
