-- marts.profile_groups counts every tabulated citizen exactly once: its total equals the
-- citizens in scope with a profile, and no group is empty. Returns the disagreement.
with tabulated as (
    select count(*) as n from marts.citizens
    where in_scope and profile_source <> 'unreviewed' and profile is not null
),

grouped as (
    select coalesce(sum(n), 0) as n, count(*) filter (where n < 1) as empty_groups
    from marts.profile_groups
)

select tabulated.n as citizens, grouped.n as counted, grouped.empty_groups
from tabulated, grouped
where tabulated.n <> grouped.n or grouped.empty_groups > 0
