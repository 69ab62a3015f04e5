-- The headline's split of the citizens in scope by where their profile comes from (issue 15):
-- `reviewed` (a case review, the rules' profile, in the tables), `model` (the model's profile,
-- in the tables), `uncertain` (the model unsure: no profile, listed for review, not in the
-- tables). reviewed + model = the tables' grand total; uncertain is part of the headline's
-- `unreviewed`. One row; `pipeline.release.headline` shows each only when the suppression
-- rule allows it.
select
    count(*) filter (where tabulated and profile_source = 'rules') as reviewed,
    count(*) filter (where tabulated and profile_source = 'model') as model,
    count(*) filter (where profile_source = 'uncertain') as uncertain
from marts.citizens
where in_scope
