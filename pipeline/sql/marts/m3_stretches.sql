-- marts.m3_stretches (a view): one row per citizen × stretch in an M3-equivalent match group,
-- definitions §3. Parameters: $reference_date.
-- The same merge as marts.courses, over the episodes in an M3-equivalent group (whatever their
-- benefit), from the marks of marts.episode_marks: the gap is measured between M3 episodes
-- only, so an episode in another group lying inside a short gap does not break the stretch.
-- Why a view, and ties on start date: see marts.courses.
with

episode_marks as (

    select * from marts.episode_marks

),

numbered as (

    select
        citizen_id,
        start_date,
        m3_end,
        sum(opens_stretch::integer) over (
            partition by citizen_id
            order by start_date
            range between unbounded preceding and current row
        ) as stretch_no
    from episode_marks
    where m3_end is not null

),

stretches as (

    select
        citizen_id,
        stretch_no::integer as stretch_no,
        min(start_date) as first_day,
        max(m3_end) as last_day,
        (max(m3_end) - min(start_date) + 1)::integer as stretch_days,
        count(*)::integer as episodes,
        $reference_date between min(start_date) and max(m3_end) as covers_reference_date
    from numbered
    group by citizen_id, stretch_no

)

select * from stretches
