-- marts.predictions: every probability lies in [0, 1], an uncertain profile is below the
-- threshold only because its probability is, and the source is model or uncertain; returns
-- the offending rows.
with

predictions as (

    select * from marts.predictions

)

select citizen_id, profile_source, profile_probability
from predictions
where profile_probability is null
   or profile_probability < 0
   or profile_probability > 1
   or profile_source not in ('model', 'uncertain')
   or profile is null
