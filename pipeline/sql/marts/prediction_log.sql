-- marts.prediction_log: one row per prediction of this run (issue 15, the AI Act's
-- record-keeping): run id, model version (hash of the training data, config and code
-- version), inputs hash (of the citizen's inputs), predicted flags and probabilities (as a
-- JSON object), profile, its probability and source. Internal: per person.
-- Parameters: $run_id.
with

predictions as (

    select * from marts.predictions

)

select
    $run_id::varchar as run_id,
    model_version,
    citizen_id,
    inputs_hash,
    flags_json::json as flags,
    profile,
    profile_probability,
    profile_source
from predictions
