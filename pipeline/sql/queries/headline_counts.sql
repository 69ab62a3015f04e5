-- The counts of the report's headline that no table holds (definitions §5): the citizens in
-- scope, the unreviewed among them, and the complex cases among the tabulated (in scope,
-- with a profile). One row. `pipeline.release.headline` shows each only when the
-- suppression rule allows it.
select
    count(*) as in_scope,
    count(*) filter (where profile_source = 'unreviewed') as unreviewed,
    count(*) filter (where tabulated and complex_case) as complex_case
from marts.citizens
where in_scope
