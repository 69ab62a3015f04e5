-- One night of the history (issue 16; README, History): what this run concluded about each
-- citizen of the export, in scope or not (a citizen who left M3 is a movement, not a gap).
-- Pseudonymous, per person: internal. The night's key (reference date, and a digest of the
-- input files, the rules and the config) is in the file's name and in every row.
-- Parameters: $reference_date, $run_id, $night_digest.
select
    $reference_date::date as reference_date,
    $run_id::varchar as run_id,
    $night_digest::varchar as night_digest,
    citizen_id,
    in_scope,
    match_group_on_reference_date as match_group,
    profile,
    profile_source,
    m3_days
from marts.citizens
order by citizen_id
