-- history.profile_versions: the history as a slowly changing dimension (type 2): one row per
-- citizen and unbroken stretch of nights with the same profile and profile source in scope,
-- valid from its first night to the first night after it that differs (another profile,
-- another source, out of scope or not in the export), open (null) while it is current.
-- Reads history.nights (the latest run of each reference date; pipeline/history.py).
with

nights as (

    select distinct reference_date from history.nights

),

night_order as (

    select reference_date, lead(reference_date) over (order by reference_date) as next_night
    from nights

),

in_scope as (

    select n.citizen_id, n.reference_date, n.profile, n.profile_source, o.next_night
    from history.nights as n
    join night_order as o using (reference_date)
    where n.in_scope

),

marked as (
    -- a version starts where the previous night of the same citizen is not the night just
    -- before, or held another profile or source
    select
        *,
        lag(next_night) over w is distinct from reference_date
            or lag(profile) over w is distinct from profile
            or lag(profile_source) over w is distinct from profile_source as starts
    from in_scope
    window w as (partition by citizen_id order by reference_date)

),

versions as (

    select *, sum(starts::integer) over (partition by citizen_id order by reference_date) as version
    from marked

),

grouped as (

    select
        citizen_id,
        version,
        any_value(profile) as profile,
        any_value(profile_source) as profile_source,
        min(reference_date) as valid_from,
        max(reference_date) as last_night,
        count(*) as nights
    from versions
    group by citizen_id, version

)

select
    g.citizen_id,
    g.version,
    g.profile,
    g.profile_source,
    g.valid_from,
    -- the first night after the version's last one (null: the latest night holds it)
    o.next_night as valid_to,
    g.nights
from grouped as g
join night_order as o on o.reference_date = g.last_night
order by g.citizen_id, g.version
