-- The counts of the report's headline that no table holds (definitions §5): the citizens in
-- scope, those among them without a profile (`unreviewed`: not reviewed and no model, or the
-- model uncertain; none is in the tables), and the complex cases among the tabulated (in
-- scope, with a profile). One row. `pipeline.release.headline` shows each only when the
-- suppression rule allows it.
select
    count(*) as in_scope,
    count(*) filter (where profile_source in ('uncertain', 'unreviewed')) as unreviewed,
    count(*) filter (where tabulated and complex_case) as complex_case
from marts.citizens
where in_scope
