-- Profiles and age bands in marts.citizens that the profiles and age bands the report will
-- label do not know (a warehouse segmented with other rules or bands). One row of two lists.
-- Parameters: $codes (profile codes), $bands (age-band codes).
select
    list(distinct profile order by profile) filter (where not list_contains($codes, profile))
        as profiles,
    list(distinct age_band order by age_band) filter (where not list_contains($bands, age_band))
        as age_bands
from marts.citizens
where in_scope
