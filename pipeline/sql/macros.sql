-- Parsing rules of the data contract, shared by the staging models and their quarantine
-- checks so that "what loads" and "what is rejected" can never disagree.
-- Temporary macros: created on every connection, never stored in the warehouse.

-- empty means "not recorded"
create or replace temp macro m3_blank(s) as nullif(trim(s), '');

-- free text (notes): the same as m3_blank, cheaper on long texts. trim() decodes and copies
-- every character, yet most texts neither start nor end with a space; \p{Zs} (the Unicode
-- space separators) is exactly what trim() removes, and RE2 matches `\p{Zs}$` from the end.
create or replace temp macro m3_text(s) as
    case
        when regexp_matches(s, '^\p{Zs}') or regexp_matches(s, '\p{Zs}$') then m3_blank(s)
        else nullif(s, '')
    end;

-- integers, with Excel's trailing ".0" (a cast alone would round 1980.5 to 1981)
create or replace temp macro m3_int(s) as
    case when regexp_full_match(trim(s), '-?\d{1,18}(\.0+)?')
        then try_cast(regexp_replace(trim(s), '\.0+$', '') as bigint) end;

-- dates: ISO (year first) or Danish day-first with - . or /; a two-digit year is not a
-- date (1913 or 2013?). Position tests, not regexes: this runs twice per episode. The first
-- two branches are the shapes exports write (the Danish dd-mm-yyyy; yyyy-mm-dd from Parquet
-- and Excel dates), which the later branches would read the same way, tested first because
-- trim() copies every value.
create or replace temp macro m3_date(s) as
    case
        when length(s) = 10 and substr(s, 3, 1) = '-' and substr(s, 6, 1) = '-'
            then try_strptime(s, '%d-%m-%Y')::date
        when length(s) = 10 and substr(s, 5, 1) = '-' and substr(s, 8, 1) = '-'
            then try_strptime(s, '%Y-%m-%d')::date
        when strpos(trim(s), '-') = 5 then try_strptime(trim(s), '%Y-%m-%d')::date
        when length(trim(s)) between 8 and 10 and substr(trim(s), -5, 1) in ('-', '.', '/')
            then try_strptime(trim(s), ['%d-%m-%Y', '%d.%m.%Y', '%d/%m/%Y'])::date
    end;

-- booleans: 1/0, true/false, ja/nej, yes/no, x (Excel check mark); NULL = blank or unknown.
-- The exact common spellings are tested first: this runs for ~30 flag columns per citizen.
create or replace temp macro m3_bool(s) as
    case
        when s is null or s = '' then null
        when s = 'x' or s = '1' then true
        when s = '0' then false
        when lower(trim(s)) in ('1', '1.0', 'true', 'ja', 'yes', 'x') then true
        when lower(trim(s)) in ('0', '0.0', 'false', 'nej', 'no') then false
    end;

-- sex: K/M, also F, kvinde/mand, female/male
create or replace temp macro m3_sex(s) as
    case
        when lower(trim(s)) in ('k', 'f', 'kvinde', 'female') then 'K'
        when lower(trim(s)) in ('m', 'mand', 'male') then 'M'
    end;

-- match group: 1-5 (M1..M5, Excel's 3.0), jobparat, aktivitetsparat
create or replace temp macro m3_match_group(s) as
    case
        when s in ('1', '2', '3', '4', '5', 'jobparat', 'aktivitetsparat') then s
        when regexp_full_match(lower(trim(s)), 'm?[1-5](\.0+)?')
            then regexp_extract(trim(s), '[1-5]')
        when lower(trim(s)) in ('jobparat', 'aktivitetsparat') then lower(trim(s))
    end;

-- benefit codes; Danish spellings with æ/ø/å accepted. The codes as written are tested
-- first: this runs once per episode, and lower/trim/replace copy every longer value.
create or replace temp macro m3_benefit(s) as
    case
        when s in ('kontanthjaelp', 'uddannelseshjaelp', 'dagpenge', 'sygedagpenge',
            'ressourceforloeb', 'ledighedsydelse', 'fleksjob', 'foertidspension', 'other')
            then s
        when replace(replace(replace(lower(trim(s)), 'æ', 'ae'), 'ø', 'oe'), 'å', 'aa') in (
            'kontanthjaelp', 'uddannelseshjaelp', 'dagpenge', 'sygedagpenge',
            'ressourceforloeb', 'ledighedsydelse', 'fleksjob', 'foertidspension', 'other')
            then replace(replace(replace(lower(trim(s)), 'æ', 'ae'), 'ø', 'oe'), 'å', 'aa')
    end;
