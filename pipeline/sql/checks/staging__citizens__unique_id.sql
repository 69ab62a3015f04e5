-- staging.citizens has one row per citizen_id (duplicates go to quarantine, all of them).
select citizen_id, count(*) as n
from staging.citizens
group by citizen_id
having count(*) > 1
