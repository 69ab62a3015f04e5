-- every staged episode belongs to a staged citizen, and none ends before it starts.
select e.citizen_id, e._line
from staging.episodes as e
left join staging.citizens as c using (citizen_id)
where c.citizen_id is null or e.end_date < e.start_date
