-- §6 for the cohort table (definitions §8.5): no published count from 1 to min_cell - 1; no
-- share shown beside a hidden count; a profile's cohort (printed at every horizon) hidden at
-- all horizons or at none. Returns the offending cells.
select horizon, profile, status, n_published, share_published
from marts.published_cohort
where n_published between 1 and $min_cell - 1
    or (share_published is not null and n_published is null)
    or (status = 'total' and profile in (
        select profile from marts.published_cohort where status = 'total'
        group by profile having count(distinct hidden) > 1
    ))
