-- marts.case_flags: the case-review flags the tables count, one row per staged citizen: a
-- reviewed citizen's as recorded; a model-assigned citizen's predicted flags (the flags the
-- rules test; every other flag unknown, null); an uncertain or unreviewed citizen's as
-- recorded (not tabulated). A view: the report's one scan of the citizens reads it.
-- Placeholder (case_flags in double braces): `segment.py` lists every flag column of the
-- contract, each as the recorded or the predicted value (names from pipeline.vocabulary).
-- No parameters.
with

case_reviews as (

    select * from staging.citizens

),

citizens as (

    select citizen_id, profile_source from marts.citizens

),

predictions as (

    select * from marts.predictions

),

flagged as (

    select
        case_reviews.* exclude ({{ flag_list }}),
        {{ case_flags }}
    from case_reviews
    join citizens using (citizen_id)
    left join predictions on predictions.citizen_id = case_reviews.citizen_id
        and citizens.profile_source = 'model'

)

select * from flagged
