-- The segment stage's headline counts (definitions §5), from marts.citizens: one row. The
-- shares' base is the page's: the tabulated citizens (in scope, with a profile), so the run
-- summary and the report state one number for one figure.
-- Parameters: $one_year, the lower edge of the 1_to_2y band ("more than one year in M3").
select
    count(*) as citizens,
    coalesce(sum(courses), 0) as courses,
    coalesce(sum(m3_stretches), 0) as m3_stretches,
    count(*) filter (where in_scope) as in_scope,
    count(*) filter (where tabulated) as tabulated,
    count(*) filter (where tabulated and m3_days >= $one_year) as m3_over_1y,
    count(*) filter (where tabulated and course_class = 'long_continuous') as long_continuous,
    count(*) filter (where tabulated and complex_case) as complex_case
from marts.citizens
