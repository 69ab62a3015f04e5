"""A synthetic input export calibrated on the Faxe report ("Profiler og mulighedskatalog for
matchgruppe 3"), for demos, tests and benchmarks.

Reads nothing. Writes `citizens.csv` and `episodes.csv` into a folder, shaped like a Danish
municipality's Excel export (data contract): `;`-separated, Windows-1252, CRLF line ends,
dates `dd-mm-yyyy`, flags as `x`/empty, `reviewed` as `ja`/`nej`, header = canonical names.
The same `n`, `seed` and reference date always give the same bytes.

How the data are made (all vectorised with numpy, no loop per citizen or episode):
- Latent traits are drawn in a fixed order (status on the reference date, reviewed, base
  profile, age, sex, course structure, M3 duration, misuse, flags). Shares that the
  calibration measures are drawn by *stratified* sampling (`_draw`, `_strat_uniform`) within
  the strata the calibration uses, so an achieved share lands within a fraction of a
  percentage point of its target even at a few thousand citizens.
- Histories are built backwards from an anchor date: the current course = an optional
  pre-M3 segment (jobparat, dagpenge, sygedagpenge, ...) followed by the M3 segment whose
  length is the citizen's `m3_days`; earlier courses lie more than `COURSE_GAP_DAYS` days
  before it. Inside a course, spells touch, leave gaps of 1-30 days or overlap a little,
  so the definitions (§2, §3) give back exactly the latent course class and `m3_days`.
- `calibration()` measures every target from the generated tables alone (its own pandas
  merge of spells), never from the latent variables.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.config import Config
from pipeline.vocabulary import (
    BENEFITS,
    EPISODE_COLUMNS,
    FLAG_COLUMNS,
    MATCH_GROUPS,
)
from pipeline.vocabulary import CITIZEN_COLUMNS as _CONTRACT_CITIZEN_COLUMNS

# ---------------------------------------------------------------------------------------------
# Vocabulary of the data contract (pipeline.vocabulary) and the definitions' defaults
# (pipeline.config.Config): the demo is made for them and measured against them
# ---------------------------------------------------------------------------------------------

FAXE_MUNICIPALITY_CODE = 320
# The contract's citizens columns without `match_group`: the group on the reference date
# comes from the episodes (data contract: "When absent it is taken from the citizen's episode
# covering the reference date").
CITIZEN_COLUMNS: tuple[str, ...] = tuple(
    c for c in _CONTRACT_CITIZEN_COLUMNS if c != "match_group"
)
_DEFAULTS = Config()
NON_SUPPORT: tuple[str, ...] = _DEFAULTS.support_excluded  # definitions §2
M3_GROUPS: tuple[str, ...] = _DEFAULTS.m3_groups  # definitions §3
COURSE_GAP_DAYS = _DEFAULTS.course_gap_days  # definitions §2: gap = days strictly between
LONG_COURSE_DAYS = _DEFAULTS.long_course_days  # definitions §2: 3 x 365
# the base profiles of the shipped rules (pipeline/rules.toml), which the demo's latent
# profiles follow
BASE_PROFILES: tuple[str, ...] = (
    "maybe_suitable", "physically_ill", "diffuse_psychiatric", "diagnosed",
)  # fmt: skip
SCENARIOS: tuple[str, ...] = ("faxe",)

_KH, _UH, _DP, _SDP, _RF, _LY, _FJ, _FP, _OTHER = range(len(BENEFITS))
_G1, _G2, _G3, _G4, _G5, _GA, _GJ = range(len(MATCH_GROUPS))
_MS, _PHYS, _DIFF, _DIAG = range(len(BASE_PROFILES))
_EPOCH = dt.date(1970, 1, 1)
_REFORM_2014 = (dt.date(2014, 1, 1) - _EPOCH).days  # jobparat/aktivitetsparat replace M1-M5
_REFORM_2013 = (dt.date(2013, 1, 1) - _EPOCH).days  # ressourceforløb exists from 2013
_MIN_SPELL = 31  # shortest generated spell; longer than any in-course gap (<= 30)


# ---------------------------------------------------------------------------------------------
# Calibration targets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    target: float
    description: str


@dataclass(frozen=True)
class CalibrationItem:
    name: str
    target: float
    achieved: float


@dataclass(frozen=True)
class DemoResult:
    citizens_path: Path
    episodes_path: Path
    n_citizens: int
    n_episodes: int
    calibration: list[CalibrationItem]


# Populations: "all" = every citizen; "scope" = citizens in M3 on the reference date
# (definitions §3, the report's population); "reviewed" = reviewed citizens in scope (their
# flags are what the report counted). Profiles are BASE profiles (definitions §1).
TARGETS: tuple[Target, ...] = (
    Target("in_m3_on_reference_date", 0.93,
           "all: match group 3/aktivitetsparat on the reference date (the scope; design choice)"),
    Target("profile_maybe_suitable", 0.45,
           "reviewed: base profile maybe_suitable (Faxe: ca. 45 %)"),
    Target("profile_physically_ill", 0.30,
           "reviewed: base profile physically_ill (Faxe: ca. 30 %)"),
    Target("profile_diffuse_psychiatric", 0.15,
           "reviewed: base profile diffuse_psychiatric (Faxe: ca. 15 %)"),
    Target("profile_diagnosed", 0.10,
           "reviewed: base profile diagnosed (Faxe: ca. 10 %)"),
    Target("misuse_any", 0.20,
           "reviewed: alcohol or soft_drugs or hard_drugs (Faxe: misusers 20 %)"),
    Target("alcohol_men_40_plus", 0.60,
           "reviewed alcohol misusers: men aged 40+ (Faxe: older men with alcohol)"),
    Target("drugs_men_under_30", 0.60,
           "reviewed soft/hard drug misusers: men under 30 (Faxe: young men, broad misuse)"),
    Target("maybe_suitable_age_20_29", 0.60,
           "reviewed maybe_suitable: aged 20-29 (Faxe Table 2: over-represented young)"),
    Target("diffuse_age_40_plus", 0.70,
           "reviewed diffuse_psychiatric: aged 40+ (Faxe: 'størstedelen ... er 40 år+')"),
    Target("long_continuous", 0.75,
           "scope: long_continuous course class (Faxe: ca. 75 % in a course > 3 years)"),
    Target("physically_ill_long_continuous", 2 / 3,
           "reviewed physically_ill: long_continuous (Faxe: ca. 2/3)"),
    Target("diffuse_long_continuous", 0.85,
           "reviewed diffuse_psychiatric: long_continuous (Faxe Table 5: 'markant')"),
    Target("diagnosed_long_continuous", 0.70,
           "reviewed diagnosed: long_continuous (Faxe Table 6: 'en stor del')"),
    Target("m3_1y_plus", 0.50,
           "scope: m3_days >= 365 (Faxe: ca. 50 % more than one year in M3)"),
    Target("m3_1_to_2y", 0.40,
           "scope: 365 <= m3_days <= 729 (band 1_to_2y)"),
    Target("motivated_work_or_education", 0.70,
           "reviewed: motivation_work or motivation_education (Faxe Table 8)"),
    Target("physically_ill_focus_work", 1 / 3,
           "reviewed physically_ill: focus_ordinary_work (Faxe Table 3: 1/3)"),
    Target("physically_ill_focus_pension", 1 / 3,
           "reviewed physically_ill: focus_pension_case (Faxe Table 3: 1/3)"),
    Target("physically_ill_focus_unclear", 1 / 3,
           "reviewed physically_ill: neither work nor pension focus (Faxe: 1/3 uafklarede)"),
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Generation parameters (the latent model behind the targets)
# ---------------------------------------------------------------------------------------------

# Status on the reference date: in M3 / jobparat / support ended / moved to pension or flex job.
_STATUS_SHARES = (0.93, 0.035, 0.02, 0.015)
_IN_M3, _JOBPARAT, _ENDED, _PENSION = range(4)
_PROFILE_SHARES = (0.45, 0.30, 0.15, 0.10)
_AGE_EDGES = np.array([18, 20, 25, 30, 40, 50, 60, 65])
_AGE_BIN_SHARES = np.array([
    [0.02, 0.27, 0.33, 0.18, 0.10, 0.08, 0.02],  # maybe_suitable: 60 % aged 20-29
    [0.00, 0.03, 0.05, 0.15, 0.25, 0.37, 0.15],  # physically_ill: older
    [0.00, 0.04, 0.08, 0.18, 0.30, 0.30, 0.10],  # diffuse_psychiatric: 70 % aged 40+
    [0.01, 0.12, 0.15, 0.25, 0.22, 0.20, 0.05],  # diagnosed
])  # fmt: skip
_MALE_SHARE = np.array([0.55, 0.45, 0.35, 0.50])  # Faxe: depressed women among the diffuse
# long_continuous per profile; maybe_suitable solves 0.45x + 0.30*2/3 + 0.15*0.85 + 0.10*0.70
# = 0.75 (the report's overall share).
_LONG_SHARE = np.array(
    [(0.75 - 0.30 * 2 / 3 - 0.15 * 0.85 - 0.10 * 0.70) / 0.45, 2 / 3, 0.85, 0.70]
)
_LONG_MIN_AGE = 21  # a course > 3 years starting at 17 at the earliest
_SHORT_AMONG_OTHERS = 0.4  # short_continuous vs several_separate among the rest
_M3_BAND_SHARES = (0.50, 0.40, 0.10)  # under_1y, 1_to_2y, 2y_plus
# Misuse: shares of all citizens and how they concentrate (Faxe p. 10).
_ALCOHOL_SHARE, _ALCOHOL_MEN_40 = 0.125, 0.60
_DRUG_SHARE, _DRUG_MEN_UNDER_30 = 0.10, 0.60
_BROAD_ALCOHOL = 0.35  # young male drug misusers who also drink ("et bredt misbrug")
_MOTIVATED = np.array([0.87, 0.60, 0.55, 0.45])  # work or education, per profile
_JOINTS = (0.62, 0.30, 0.08)  # touch, gap of 1-30 days, overlap of 1-14 days
# Benefit of a spell by block (pre-M3 first spell, pre-M3 later, M3, earlier course) and base
# profile; columns follow BENEFITS. kontanthjælp becomes uddannelseshjælp for the young after
# 2014 and ressourceforløb becomes kontanthjælp before 2013 (the reforms).
_BENEFIT_P = np.array([
    # kh    uh   dp    sdp   rf    ly    fj   fp   other
    [[.55, 0, .35, .10, 0, 0, 0, 0, 0], [.30, 0, .25, .45, 0, 0, 0, 0, 0],
     [.45, 0, .25, .30, 0, 0, 0, 0, 0], [.55, 0, .15, .30, 0, 0, 0, 0, 0]],
    [[.80, 0, .05, .05, .03, .02, 0, 0, .05], [.55, 0, 0, .25, .12, .05, 0, 0, .03],
     [.65, 0, 0, .15, .15, 0, 0, 0, .05], [.60, 0, 0, .10, .25, 0, 0, 0, .05]],
    [[.90, 0, 0, .03, .05, 0, 0, 0, .02], [.60, 0, 0, .15, .22, .03, 0, 0, 0],
     [.65, 0, 0, .07, .28, 0, 0, 0, 0], [.55, 0, 0, .05, .40, 0, 0, 0, 0]],
    [[.55, 0, .35, .10, 0, 0, 0, 0, 0], [.40, 0, .20, .40, 0, 0, 0, 0, 0],
     [.50, 0, .25, .25, 0, 0, 0, 0, 0], [.60, 0, .15, .25, 0, 0, 0, 0, 0]],
])  # fmt: skip
_PRE_FIRST, _PRE_OTHER, _M3_BLOCK, _EARLIER = range(4)

# ---------------------------------------------------------------------------------------------
# Case-note language (Danish; every character is in Windows-1252; no digits that could form a
# CPR number, no double quotes, no line breaks; some contain ';' and ',' on purpose)
# ---------------------------------------------------------------------------------------------

_PROFILE_NOTES: tuple[tuple[str, ...], ...] = (
    (  # maybe_suitable
        "Borger vurderes at være tæt på arbejdsmarkedet og kan formentlig matches 2.",
        "Ingen væsentlige helbredsmæssige begrænsninger; har brug for hjælp til jobsøgning.",
        "Borger har tidligere haft ufaglært arbejde på et lager og vil gerne tilbage.",
        "Har afbrudt en erhvervsuddannelse og overvejer at genoptage den.",
        "Sagsbehandler vurderer, at borger kan deltage i virksomhedspraktik.",
        "Borger fremstår ressourcestærk, men mangler erhvervserfaring og netværk.",
        "Er matchet 3, fordi der ikke har været et relevant tilbud; kunne godt deltage.",
        "Mangler struktur i hverdagen, men der er ingen dokumenterede helbredsproblemer.",
        "Borger møder stabilt op og virker klar til en mere aktiv indsats.",
        "Har været parkeret i matchgruppe 3 længe uden en egentlig begrundelse.",
    ),
    (  # physically_ill
        "Borger har kroniske rygsmerter og kan ikke løfte eller stå i længere tid.",
        "Diskusprolaps i lænden, venter på operation.",
        "Borger har gigt i hænder og knæ, hvilket begrænser arbejdsevnen.",
        "Har KOL og bliver hurtigt forpustet ved fysisk aktivitet.",
        "Borger er diabetiker med følgesygdomme og har haft flere indlæggelser.",
        "Piskesmæld efter et trafikuheld; konstant hovedpine og svimmelhed.",
        "Borger har hjerteproblemer og følges af egen læge og kardiolog.",
        "Fibromyalgi med smerter i hele kroppen, kan ikke sidde ned ret længe.",
        "Nedslidt efter mange år som rengøringsassistent, skulder- og nakkesmerter.",
        "Overvægt giver store fysiske begrænsninger i hverdagen.",
        "Har fået konstateret sklerose; sygdommen er i udvikling.",
    ),
    (  # diffuse_psychiatric
        "Borgeren oplever stress og angst, afventer udredning.",
        "Borger fortæller om nedtrykthed og søvnproblemer, men der er ingen diagnose.",
        "Der er mistanke om depression; borger er henvist til psykolog.",
        "Borger beskriver sig selv som udbrændt og har svært ved at overskue hverdagen.",
        "Psykiske problemer efter en skilsmisse, endnu ikke udredt.",
        "Borger har angst for at forlade hjemmet og venter på udredning i psykiatrien.",
        "Egen læge beskriver tegn på depression, men der er ikke stillet en diagnose.",
        "Har haft flere perioder med stress og lavt selvværd.",
        "Borgeren virker psykisk skrøbelig, og der er behov for en psykologisk vurdering.",
    ),
    (  # diagnosed
        "Borger har diagnosticeret PTSD og er i behandling i psykiatrien.",
        "Diagnosen skizofreni er stillet; borger er tilknyttet distriktspsykiatrien.",
        "Borger har en bipolar lidelse og er i medicinsk behandling.",
        "Diagnosticeret med svær depression og følges af psykiater.",
        "Borger har en ADHD-diagnose og har svært ved at fastholde aftaler.",
        "Traumatiseret flygtning med PTSD, i behandling hos psykolog.",
        "Har en personlighedsforstyrrelse og er tilknyttet et ambulant psykiatrisk tilbud.",
        "Diagnosen OCD er stillet, og borger går i kognitiv terapi.",
        "Borger har en autismespektrumforstyrrelse og har brug for faste rammer.",
        "Tilbagevendende depression diagnosticeret af psykiater, medicinsk behandlet.",
    ),
)
_PHYSICAL_SIDE_NOTES = (
    "Har desuden ondt i ryggen.",
    "Har også problemer med knæene.",
    "Døjer samtidig med migræne.",
    "Er desuden overvægtig, hvilket giver fysiske gener.",
)
_ALCOHOL_NOTES = (
    "Har et dagligt forbrug af alkohol.",
    "Borger erkender et alkoholproblem og har tidligere fået Antabus.",
    "Drikker meget i weekenderne ifølge egne oplysninger.",
    "Lugtede af alkohol ved samtalen.",
    "Alkoholmisbrug gennem mange år; ønsker ikke behandling.",
)
_SOFT_NOTES = (
    "Ryger hash dagligt.",
    "Borger oplyser et forbrug af hash for at kunne sove.",
    "Har et forbrug af cannabis og er henvist til misbrugscentret.",
)
_HARD_NOTES = (
    "Misbrug af kokain og amfetamin i perioder.",
    "Borger er i substitutionsbehandling med metadon.",
    "Har tidligere brugt heroin, nu i behandling.",
)
_BROAD_NOTES = (
    "Blandingsmisbrug af hash, kokain og piller.",
    "Bredt misbrug af både hash og hårde stoffer.",
)
_BARRIER_NOTES: tuple[tuple[str, ...], ...] = (
    ("Borger er boligløs og bor midlertidigt hos en ven.",
     "Har problemer med boligen og risikerer at blive sat ud."),
    ("Har stor gæld og rod i økonomien.",
     "Økonomien er anstrengt med restancer og inkasso."),
    ("Har ikke kørekort, og busforbindelserne fra landsbyen er dårlige.",
     "Transport er et problem; bor langt fra offentlig transport."),
    ("Alene med børnene, hvoraf et har særlige behov.",
     "Børnene fylder meget, og der er en sag i familieafdelingen."),
    ("Taler kun lidt dansk; tolk er nødvendig ved samtaler.",
     "Sproget er en barriere, borger går på danskuddannelse."),
    ("Borger er meget isoleret og har intet netværk.",
     "Lever ensomt og kommer sjældent ud af hjemmet."),
)  # fmt: skip
_MOTIVATION_NOTES: tuple[tuple[str, ...], ...] = (
    ("Har stor vilje til at overkomme sine udfordringer.",
     "Borger er positiv og vil gerne arbejde med sine barrierer."),
    ("Borger ønsker at komme i arbejde.",
     "Vil gerne have et job, gerne med få timer til at begynde med.",
     "Motiveret for virksomhedspraktik."),
    ("Drømmer om at blive pædagogmedhjælper.",
     "Ønsker at tage afgangsprøven på VUC.",
     "Er motiveret for at starte på en uddannelse."),
    ("Borger giver udtryk for ikke at have lyst til noget.",
     "Har opgivet at komme i arbejde.",
     "Ønsker ikke at deltage i tilbud."),
    ("Borger ønsker førtidspension.",
     "Ønsker at få rejst en pensionssag.",
     "Er træt af systemet og vil have fred; ønsker pension."),
)  # fmt: skip
_FOCUS_NOTES = (
    ("Fokus er tilbagevenden til det ordinære arbejdsmarked.", "focus_ordinary_work"),
    ("Sagen forberedes til rehabiliteringsteamet med henblik på pension.", "focus_pension_case"),
    ("Afventer afklaring af behandlingsmuligheder hos speciallæge.", "focus_physical_treatment"),
    ("Der arbejdes med at få borger i psykiatrisk behandling.", "focus_psych_treatment"),
    ("Borger er henvist til misbrugsbehandling.", "focus_misuse_treatment"),
    ("Det er aftalt at give borger ro i en periode.", "focus_rest"),
    ("Der planlægges et opkvalificerende forløb.", "focus_upskilling"),
    ("Der søges om mentorstøtte.", "focus_support_scheme"),
)
_FILLER_NOTES = (
    "Samtale afholdt telefonisk.",
    "Borger udeblev fra seneste samtale.",
    "Ny sagsbehandler på sagen.",
    "Borger deltog i samtalen med en bisidder.",
    "Statusattest indhentet fra egen læge.",
    "Ingen ændringer siden sidste opfølgning.",
    "Opfølgning om tre måneder.",
    "Der er lavet en ny plan sammen med borger.",
    "Borger har det svært for tiden.",
    "Klager over træthed og hovedpine.",
)


# ---------------------------------------------------------------------------------------------
# Stratified sampling: exact shares within the strata the calibration measures
# ---------------------------------------------------------------------------------------------


def _strata(*cols: np.ndarray) -> np.ndarray:
    """One int64 code per row from small non-negative int/bool columns (mixed radix)."""
    code = np.zeros(len(cols[0]), np.int64)
    for c in cols:
        c = np.asarray(c, np.int64)
        code = code * (int(c.max(initial=0)) + 1) + c
    return code


def _strat_uniform(rng: np.random.Generator, strata: np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1) that are evenly spread inside each stratum (one per 1/size slot,
    in random order), so `u < p` selects round(p * size) rows of every stratum."""
    n = len(strata)
    order = np.lexsort((rng.random(n), strata))
    s = strata[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if n else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, n])
    first = np.repeat(starts, sizes)
    u = np.empty(n)
    u[order] = (np.arange(n) - first + rng.random(n)) / np.repeat(sizes, sizes)
    return u


def _draw(rng: np.random.Generator, p: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Systematic sampling: row i is chosen with probability p[i], and every stratum gets
    its expected count rounded up or down (p may vary inside a stratum)."""
    n = len(p)
    order = np.lexsort((rng.random(n), strata))
    ps = np.clip(np.asarray(p, float)[order], 0.0, 1.0)
    cs = np.cumsum(ps)
    prev = np.r_[0.0, cs[:-1]]
    u = rng.random()
    out = np.empty(n, bool)
    out[order] = np.floor(u + cs) > np.floor(u + prev)
    return out


def _categorical(u: np.ndarray, probs, context: np.ndarray | None = None) -> np.ndarray:
    """Category index from uniforms `u`: `probs` is one probability row (k,), or a table
    (contexts, k) whose row is chosen by `context` (small non-negative ints)."""
    probs = np.asarray(probs, float)
    if probs.ndim == 1:
        return np.searchsorted(np.cumsum(probs)[:-1], u, side="right")
    out = np.zeros(len(u), np.int64)
    for c in np.unique(context):  # a loop over the few contexts, not over rows
        rows = context == c
        out[rows] = np.searchsorted(np.cumsum(probs[c])[:-1], u[rows], side="right")
    return out


def _days(d: dt.date) -> int:
    return (d - _EPOCH).days


def _jan1(years: np.ndarray) -> np.ndarray:
    """Day number of 1 January of each year."""
    return (years - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)


def _year_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


# ---------------------------------------------------------------------------------------------
# Latent citizens
# ---------------------------------------------------------------------------------------------


def _latent(rng: np.random.Generator, n: int, ref: dt.date, unreviewed_share: float) -> dict:
    everyone = np.zeros(n, np.int64)
    status = _categorical(_strat_uniform(rng, everyone), _STATUS_SHARES)
    in_m3 = status == _IN_M3
    reviewed = _strat_uniform(rng, _strata(status)) >= unreviewed_share
    profile = _categorical(_strat_uniform(rng, _strata(status, reviewed)), _PROFILE_SHARES)
    age_bin = _categorical(
        _strat_uniform(rng, _strata(status, reviewed, profile)), _AGE_BIN_SHARES, profile
    )
    lo, hi = _AGE_EDGES[age_bin], _AGE_EDGES[age_bin + 1]
    age = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    male = _strat_uniform(rng, _strata(status, reviewed, profile, age_bin)) < _MALE_SHARE[profile]
    birth_year = ref.year - age

    # Course structure: long_continuous needs a course > 3 years after age 17.
    cell = _strata(status, reviewed, profile)
    feasible = age >= _LONG_MIN_AGE
    p_long = np.where(in_m3, _LONG_SHARE[profile], 0.5)
    share_feasible = pd.Series(feasible).groupby(cell).transform("mean").to_numpy()
    long = _draw(rng, np.where(feasible, p_long / np.maximum(share_feasible, 1e-9), 0.0), cell)
    several = ~long & (_strat_uniform(rng, _strata(status, long)) >= _SHORT_AMONG_OTHERS)
    structure = np.where(long, 0, np.where(several, 2, 1))
    m3_band = _categorical(_strat_uniform(rng, _strata(status, structure)), _M3_BAND_SHARES)

    # Misuse (Faxe p. 10): alcohol mostly men 40+, drugs mostly men under 30; independent of
    # the base profile, so dual diagnosis (diagnosed + misuse) occurs naturally.
    men40 = male & (age >= 40)
    men_u30 = male & (age < 30)
    age3 = np.where(age < 30, 0, np.where(age < 40, 1, 2))
    mstrata = _strata(status, reviewed, male, age3)
    n_mu30, n_m40 = max(int(men_u30.sum()), 1), max(int(men40.sum()), 1)
    p_drug = np.where(
        men_u30,
        _DRUG_SHARE * _DRUG_MEN_UNDER_30 * n / n_mu30,
        _DRUG_SHARE * (1 - _DRUG_MEN_UNDER_30) * n / max(n - n_mu30, 1),
    )
    drugs = _draw(rng, p_drug, mstrata)
    broad = drugs & men_u30
    n_broad = _BROAD_ALCOHOL * broad.sum()
    p_alc = np.where(
        men40,
        _ALCOHOL_SHARE * _ALCOHOL_MEN_40 * n / n_m40,
        np.where(
            broad,
            _BROAD_ALCOHOL,
            max(_ALCOHOL_SHARE * (1 - _ALCOHOL_MEN_40) * n - n_broad, 0)
            / max(n - n_m40 - int(broad.sum()), 1),
        ),
    )
    alcohol = _draw(rng, p_alc, _strata(mstrata, broad))
    drug_kind = _categorical(rng.random(n), [0.5, 0.2, 0.3])  # soft / hard / both
    soft = drugs & (drug_kind != 1)
    hard = drugs & (drug_kind != 0)
    misuse = alcohol | drugs

    def bern(p: np.ndarray | float) -> np.ndarray:
        return rng.random(n) < p

    pick = np.array  # readability: per-profile parameter vectors below
    flags: dict[str, np.ndarray] = {}
    flags["psych_diagnosis"] = profile == _DIAG
    flags["psych_undiagnosed"] = profile == _DIFF
    flags["physical_illness"] = (profile == _PHYS) | (
        (profile >= _DIFF) & bern(0.25)
    )  # co-occurring physical illness does not change the base profile (§1 order)
    flags["alcohol"], flags["soft_drugs"], flags["hard_drugs"] = alcohol, soft, hard
    flags["potential_m2"] = bern(pick([0.70, 0.10, 0.08, 0.03])[profile] * np.where(misuse, 0.5, 1))

    # Case focus (Faxe Table 3): the physically ill split a third each work / pension / unclear.
    third = _categorical(_strat_uniform(rng, _strata(status, reviewed, profile)), [1 / 3] * 3)
    phys = profile == _PHYS
    flags["focus_ordinary_work"] = np.where(
        phys, third == 0, bern(pick([0.65, 0, 0.15, 0.10])[profile])
    )
    flags["focus_pension_case"] = np.where(
        phys, third == 1, bern(pick([0.02, 0, 0.10, 0.40])[profile])
    )
    flags["focus_upskilling"] = bern(pick([0.35, 0.05, 0.05, 0.05])[profile])
    flags["focus_support_scheme"] = bern(pick([0.05, 0.10, 0.10, 0.20])[profile])
    flags["focus_activation"] = bern(pick([0.40, 0.10, 0.20, 0.10])[profile])
    flags["focus_physical_treatment"] = bern(pick([0.02, 0.65, 0.10, 0.05])[profile])
    flags["focus_psych_treatment"] = bern(pick([0.02, 0.05, 0.55, 0.60])[profile])
    flags["focus_misuse_treatment"] = misuse & bern(0.55)
    flags["focus_rest"] = bern(pick([0.01, 0.10, 0.20, 0.25])[profile])

    # Motivation (Faxe Table 8): most are motivated for work or education.
    motivated = _strat_uniform(rng, _strata(status, reviewed, profile)) < _MOTIVATED[profile]
    kind = _categorical(
        rng.random(n), [[0.70, 0.15, 0.15], [0.35, 0.40, 0.25]], (age < 30).astype(np.int64)
    )  # work only / education only / both
    flags["motivation_work"] = motivated & (kind != 1)
    flags["motivation_education"] = motivated & (kind != 0)
    flags["motivation_overcomes_barriers"] = bern(np.where(motivated, 0.35, 0.05))
    wants_pension = ~motivated & bern(pick([0.10, 0.45, 0.25, 0.45])[profile])
    flags["motivation_pension"] = wants_pension
    flags["motivation_none"] = ~motivated & ~wants_pension & bern(0.5)

    # Barriers outside the job centre (Faxe's holistic view, Varde's catalog).
    woman_u45 = ~male & (age < 45)
    flags["barrier_housing"] = bern(np.where(misuse, 0.25, 0.08))
    flags["barrier_economy"] = bern(np.where(misuse, 0.45, 0.28))
    flags["barrier_transport"] = bern(0.20)
    flags["barrier_children"] = bern(np.where(woman_u45, 0.40, np.where(age < 45, 0.08, 0.03)))
    flags["barrier_language"] = bern(np.where(male, 0.05, 0.09))
    flags["barrier_isolation"] = bern(np.where((profile >= _DIFF) | (alcohol & men40), 0.40, 0.12))
    departments = 1 + rng.poisson(
        pick([0.3, 1.0, 1.2, 1.8])[profile] + 0.8 * misuse + 0.4 * flags["barrier_children"]
    )
    return {
        "status": status, "reviewed": reviewed, "profile": profile, "age": age,
        "birth_year": birth_year, "male": male, "structure": structure, "m3_band": m3_band,
        "flags": flags, "departments": np.minimum(departments, 7),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Histories
# ---------------------------------------------------------------------------------------------


def _split(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, k: np.ndarray, width: int):
    """Cut [a, b] (inclusive day numbers) into k touching pieces of >= _MIN_SPELL days each;
    returns starts, ends, valid, each (n, width), pieces left-aligned."""
    n = len(a)
    length = np.maximum(b - a + 1, 0)
    k = np.minimum(np.minimum(k, width), length // _MIN_SPELL)
    valid = np.arange(width)[None, :] < k[:, None]
    w = rng.random((n, width)) * valid
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    extra = np.maximum(length - _MIN_SPELL * k, 0)
    lens = np.where(valid, _MIN_SPELL + np.floor(w * extra[:, None]).astype(np.int64), 0)
    rows = np.flatnonzero(k > 0)
    lens[rows, k[rows] - 1] += length[rows] - lens[rows].sum(axis=1)
    ends = a[:, None] + np.cumsum(lens, axis=1) - 1
    return ends - lens + 1, ends, valid


def _joint_delta(rng: np.random.Generator, m: int) -> np.ndarray:
    """Change to a spell's end where the next spell of the same course starts: touch (0), a
    gap of 1-30 days (still one course, definitions §2) or an overlap of 1-14 days."""
    kind = _categorical(rng.random(m), _JOINTS)
    gap = rng.integers(1, COURSE_GAP_DAYS + 1, m)
    overlap = rng.integers(1, 15, m)
    return np.where(kind == 1, -gap, np.where(kind == 2, overlap, 0))


# Kinds of generated spell (internal): pieces of the current course, of an earlier course,
# and three extras.
_K_PRE, _K_M3, _K_EARLIER, _K_FUTURE, _K_PENSION, _K_OLD_FLEX = range(6)


def _histories(rng: np.random.Generator, lat: dict, ref: dt.date) -> dict:
    """Episode arrays (citizen index, start, end, open, benefit code, group code), one entry
    per spell, sorted by citizen and start."""
    n = len(lat["status"])
    R = _days(ref)
    status, profile, structure = lat["status"], lat["profile"], lat["structure"]
    in_m3, long = status == _IN_M3, structure == 0
    off_support = (status == _ENDED) | (status == _PENSION)
    anchor = np.where(off_support, R - rng.integers(31, 701, n), R)
    earliest = _jan1(lat["birth_year"] + 17)
    room = np.maximum(anchor - earliest + 1, _MIN_SPELL)

    # m3_days (definitions §3): the M3 segment [t, anchor] is the end of the current course.
    band = lat["m3_band"]
    m3 = np.select(
        [band == 0, band == 1, long],
        [rng.integers(_MIN_SPELL, 365, n), rng.integers(365, 730, n),
         730 + np.minimum(rng.exponential(250, n), 1770).astype(np.int64)],
        rng.integers(730, LONG_COURSE_DAYS + 1, n),
    )  # fmt: skip
    m3 = np.minimum(m3, room)
    # Current course length >= m3: > 3 years for long_continuous, else at most 3 years; a
    # pre-M3 segment is empty or at least one spell long.
    long_len = np.minimum(1096 + rng.exponential(1500, n).astype(np.int64), room)
    long_len = np.maximum(long_len, m3)
    long_len = np.where((long_len > m3) & (long_len - m3 < _MIN_SPELL), m3 + _MIN_SPELL, long_len)
    hi = np.minimum(LONG_COURSE_DAYS, room)
    short_len = m3 + (rng.random(n) * (hi - m3 + 1)).astype(np.int64)
    short_len = np.where(short_len - m3 < _MIN_SPELL, m3, short_len)
    t = anchor - m3 + 1
    s = anchor - np.where(long, long_len, short_len) + 1

    # Spell counts; at most 10 spells per citizen in all.
    n_earlier = np.where(structure == 2, _categorical(rng.random(n), [0.55, 0.3, 0.15]) + 1, 0)
    k3 = _categorical(rng.random(n), [0.5, 0.35, 0.15]) + 1
    k3 = np.minimum(k3, m3 // _MIN_SPELL)  # so _split keeps every M3 piece
    future = (status <= _JOBPARAT) & (rng.random(n) < 0.045)  # a spell planned after the date
    old_flex = (structure != 2) & (rng.random(n) < 0.04)
    extras = future.astype(np.int64) + (status == _PENSION) + old_flex
    kp = 1 + np.minimum(rng.poisson((t - s) / 700), 3)
    kp = np.where(t > s, np.minimum(kp, 10 - k3 - n_earlier - extras), 0)

    # The current spell: ongoing (mostly), a planned end after the date, or ended (off support).
    k_future = rng.integers(1, 61, n)
    planned = rng.random(n) < 0.15
    last_end = np.where(future, R + k_future - 1, R + rng.integers(0, 366, n))
    last_end = np.where(off_support, anchor, last_end)
    last_open = ~future & ~planned & ~off_support

    parts: list[tuple[np.ndarray, ...]] = []  # (cit, start, end, open, m3, kind, first)

    def add(cit, start, end, open_, m3flag, kind, first=False) -> None:
        m = len(cit)
        parts.append((
            cit.astype(np.int32), start.astype(np.int32), end.astype(np.int32),
            np.broadcast_to(open_, m), np.broadcast_to(m3flag, m),
            np.full(m, kind, np.int8), np.broadcast_to(first, m),
        ))  # fmt: skip

    # Pre-M3 segment [s, t - 1]: jobparat / M1, M2, M4 spells.
    p_s, p_e, p_v = _split(rng, s, t - 1, kp, 4)
    r, c = np.nonzero(p_v)
    add(r, p_s[r, c], p_e[r, c] + _joint_delta(rng, len(r)), False, False, _K_PRE, c == 0)
    del p_s, p_e, p_v
    # M3 segment [t, anchor]; the jobparat citizens' current segment is not M3.
    m_s, m_e, m_v = _split(rng, t, anchor, k3, 3)
    r, c = np.nonzero(m_v)
    last = c == k3[r] - 1
    end = np.where(last, last_end[r], m_e[r, c] + _joint_delta(rng, len(r)))
    add(r, m_s[r, c], end, last & last_open[r], status[r] != _JOBPARAT, _K_M3)
    del m_s, m_e, m_v

    # Earlier courses (several_separate): more than 30 days strictly between courses (§2).
    nxt, alive = s.copy(), np.ones(n, bool)
    for j in range(3):  # three columns, each vectorised over all citizens
        end_j = nxt - 1 - rng.integers(COURSE_GAP_DAYS + 1, 901, n)
        length_j = _MIN_SPELL + rng.exponential(300, n).astype(np.int64)
        start_j = np.maximum(end_j - length_j + 1, earliest)
        alive &= (j < n_earlier) & (end_j - start_j + 1 >= _MIN_SPELL)
        r = np.flatnonzero(alive)
        add(r, start_j[r], end_j[r], False, rng.random(len(r)) < 0.4, _K_EARLIER)
        nxt = start_j

    # Extras: a spell planned after the date (ignored, §7), the pension or flex job taken up
    # after support ended (no match group), an old flex job before the course (not support).
    r = np.flatnonzero(future)
    add(r, R + k_future[r], R + k_future[r], True, in_m3[r], _K_FUTURE)
    r = np.flatnonzero(status == _PENSION)
    taken_up = anchor[r] + 1 + rng.integers(0, COURSE_GAP_DAYS + 1, len(r))
    add(r, taken_up, taken_up, True, False, _K_PENSION)
    flex_start = s - 1 - rng.integers(0, 400, n) - rng.integers(60, 900, n)
    flex_end = np.minimum(flex_start + rng.integers(60, 900, n), s - 1)
    r = np.flatnonzero(old_flex & (flex_start >= earliest))
    add(r, flex_start[r], flex_end[r], False, False, _K_OLD_FLEX)

    cit, start, end, open_, m3flag, kind, first = (
        np.concatenate(x) for x in zip(*parts, strict=True)
    )
    parts.clear()
    order = np.lexsort((start, cit))  # the export lists each citizen's spells by start
    cit, start, end, open_ = cit[order], start[order], end[order], open_[order]
    m3flag, kind, first = m3flag[order], kind[order], first[order]
    del order

    # Benefit by block and base profile, then the reforms; the extras have their own.
    m = len(cit)
    prof = profile[cit]
    block = np.select(
        [kind == _K_PRE, kind == _K_EARLIER],
        [np.where(first, _PRE_FIRST, _PRE_OTHER), _EARLIER],
        _M3_BLOCK,
    )
    benefit = _categorical(rng.random(m), _BENEFIT_P.reshape(-1, len(BENEFITS)),
                           block * len(BASE_PROFILES) + prof)  # fmt: skip
    del block, prof
    young = (start >= _REFORM_2014) & (_year_of(start) - lat["birth_year"][cit] < 30)
    benefit = np.where((benefit == _KH) & young, _UH, benefit)
    benefit = np.where((benefit == _RF) & (start < _REFORM_2013), _KH, benefit)
    u = rng.random(m)
    benefit = np.where((kind == _K_FUTURE) & (u < 0.5), _RF, benefit)
    benefit = np.where(kind == _K_PENSION, np.where(u < 0.7, _FP, _FJ), benefit)
    benefit = np.where(kind == _K_OLD_FLEX, _FJ, benefit)
    # Match group: post-2014 names from the reform on, M1-M5 before; none for pension/flex job.
    before = start < _REFORM_2014
    old_other = np.array([_G1, _G2, _G4, _G5])[_categorical(u, [0.15, 0.68, 0.15, 0.02])]
    group = np.where(m3flag, np.where(before, _G3, _GA), np.where(before, old_other, _GJ))
    group = np.where((kind == _K_PENSION) | (kind == _K_OLD_FLEX), -1, group)
    return {
        "cit": cit, "start": start, "end": end, "open": open_,
        "benefit": benefit.astype(np.int8), "group": group.astype(np.int8),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------


def _notes(rng: np.random.Generator, lat: dict, chunk: int = 200_000) -> pa.Array:
    """Danish case notes from the latent profile and flags (also for unreviewed citizens):
    sentences chosen by vectorised indexing, joined in chunks to bound memory."""
    n = len(lat["profile"])
    f, profile = lat["flags"], lat["profile"]
    parts: list[tuple[tuple[str, ...], np.ndarray]] = []  # (sentences, index or -1 = none)

    def pick(options: tuple[str, ...], present: np.ndarray) -> None:
        idx = rng.integers(0, len(options), n, dtype=np.int16)
        parts.append((options, np.where(present, idx, -1).astype(np.int16)))

    def bern(p: float) -> np.ndarray:
        return rng.random(n) < p

    pick(_FILLER_NOTES, bern(0.3))
    # The profile sentence; 12 % of notes leave it unsaid, so a text model must use the rest.
    flat = tuple(t for group in _PROFILE_NOTES for t in group)
    counts = np.array([len(g) for g in _PROFILE_NOTES])
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    idx = offsets[profile] + (rng.random(n) * counts[profile]).astype(np.int64)
    parts.append((flat, np.where(bern(0.88), idx, -1).astype(np.int16)))
    pick(_PHYSICAL_SIDE_NOTES, f["physical_illness"] & (profile != _PHYS) & bern(0.7))
    pick(_ALCOHOL_NOTES, f["alcohol"] & bern(0.85))
    both = f["soft_drugs"] & f["hard_drugs"]
    pick(_BROAD_NOTES, both & bern(0.85))
    pick(_SOFT_NOTES, f["soft_drugs"] & ~both & bern(0.85))
    pick(_HARD_NOTES, f["hard_drugs"] & ~both & bern(0.85))
    barriers = ("barrier_housing", "barrier_economy", "barrier_transport", "barrier_children",
                "barrier_language", "barrier_isolation")  # fmt: skip
    for name, texts in zip(barriers, _BARRIER_NOTES, strict=True):
        pick(texts, f[name] & bern(0.7))
    for text, name in _FOCUS_NOTES:
        pick((text,), f[name] & bern(0.3))
    motivations = ("motivation_overcomes_barriers", "motivation_work", "motivation_education",
                   "motivation_none", "motivation_pension")  # fmt: skip
    for name, texts in zip(motivations, _MOTIVATION_NOTES, strict=True):
        pick(texts, f[name] & bern(0.8))
    pick(_FILLER_NOTES, bern(0.25))

    dictionaries = [pa.array(options, pa.string()) for options, _ in parts]
    chunks = []
    for lo in range(0, n, chunk):
        arrays = [
            d.take(pa.array(i[lo : lo + chunk].astype(np.int32), mask=i[lo : lo + chunk] < 0))
            for d, (_, i) in zip(dictionaries, parts, strict=True)
        ]
        joined = pc.binary_join_element_wise(*arrays, " ", null_handling="skip")
        chunks.append(pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined))
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _citizen_ids(index: np.ndarray, width: int) -> pa.Array:
    """`B` + zero-padded number (7 digits or more): pseudonymous, never CPR-like."""
    return _fixed_text(["B", _digits(index, width)])


def _id_width(n: int) -> int:
    return max(7, len(str(n + 100)))


def _to_str_series(arr: pa.Array) -> pd.Series:
    return pa.table({"x": arr}).to_pandas()["x"]


def _typed(n: int, seed: int, ref: dt.date, unreviewed_share: float):
    if n < 1:
        raise ValueError("n must be at least 1")
    if not 0.0 <= unreviewed_share <= 1.0:
        raise ValueError("unreviewed_share must lie between 0 and 1")
    rng = np.random.default_rng(seed)
    lat = _latent(rng, n, ref, unreviewed_share)
    hist = _histories(rng, lat, ref)
    notes = _to_str_series(_notes(rng, lat))
    ids = _citizen_ids(np.arange(1, n + 1), _id_width(n))

    reviewed = lat["reviewed"]
    cit = {
        "citizen_id": _to_str_series(ids),
        "birth_year": pd.Series(lat["birth_year"], dtype="int64"),
        "sex": pd.Series(np.where(lat["male"], "M", "K"), dtype="str"),
        "municipality_code": pd.Series(np.full(n, FAXE_MUNICIPALITY_CODE), dtype="int64"),
        "reviewed": pd.Series(reviewed, dtype="bool"),
    }
    for name in FLAG_COLUMNS:
        # Unreviewed: flags are not recorded (empty cells), the truth lives on in the notes.
        cit[name] = pd.Series(pd.arrays.BooleanArray(lat["flags"][name], ~reviewed))
    cit["departments_involved"] = pd.Series(lat["departments"], dtype="int64")
    cit["notes"] = notes
    citizens = pd.DataFrame(cit, copy=False)
    del cit, notes, lat

    end_dt = hist["end"].astype("datetime64[D]").astype("datetime64[s]")
    end_dt = np.where(hist["open"], np.datetime64("NaT", "s"), end_dt)
    group = pa.DictionaryArray.from_arrays(
        pa.array(hist["group"].astype(np.int32), mask=hist["group"] < 0),
        pa.array(MATCH_GROUPS),
    ).cast(pa.string())
    benefit = pa.DictionaryArray.from_arrays(
        pa.array(hist["benefit"].astype(np.int32)), pa.array(BENEFITS)
    ).cast(pa.string())
    episodes = pd.DataFrame({
        "citizen_id": _to_str_series(ids.take(pa.array(hist["cit"]))),
        "start_date": hist["start"].astype("datetime64[D]").astype("datetime64[s]"),
        "end_date": end_dt,
        "benefit": _to_str_series(benefit),
        "match_group": _to_str_series(group),
    }, copy=False)  # fmt: skip
    return citizens, episodes


# ---------------------------------------------------------------------------------------------
# Text form (what the export file holds) and the dirty rows
# ---------------------------------------------------------------------------------------------


def _empty_to_null(arr: pa.Array) -> pa.Array:
    """Empty cells are written as nothing (not as a quoted empty string)."""
    empty = pc.equal(arr, "")
    if not pc.any(empty).as_py():
        return arr
    return pc.if_else(empty, pa.scalar(None, arr.type), arr)


def _str_array(s: pd.Series) -> pa.Array:
    """A text column as an Arrow string or large_string array (nulls kept, no copy when
    pandas already holds it in Arrow)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
        return pa.array(s.array)
    return pa.array(s.astype("object").where(s.notna(), None), pa.string())


def _fixed_text(parts: list[np.ndarray | str], mask: np.ndarray | None = None) -> pa.Array:
    """Concatenate fixed-width pieces (uint8 digit matrices or literal strings) row by row
    into an Arrow string array: vectorised formatting of ids and dates."""
    n = next(len(p) for p in parts if not isinstance(p, str))
    cols = [
        np.full((n, len(p)), np.frombuffer(p.encode("ascii"), np.uint8)) if isinstance(p, str)
        else p
        for p in parts
    ]  # fmt: skip
    raw = np.ascontiguousarray(np.concatenate(cols, axis=1))
    arr = pa.array(raw.view(f"S{raw.shape[1]}").ravel(), mask=mask).cast(pa.string())
    return arr


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    out = np.empty((len(values), width), np.uint8)
    rest = values.astype(np.int64)
    for j in range(width - 1, -1, -1):
        out[:, j] = ord("0") + rest % 10
        rest //= 10
    return out


def _date_text(s: pd.Series) -> pa.Array:
    """dd-mm-yyyy (Danish order), null where the date is missing."""
    values = s.to_numpy(dtype="datetime64[s]")
    missing = np.isnat(values)
    d = np.where(missing, np.datetime64(0, "s"), values).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    year = month.astype("datetime64[Y]")
    day_n = (d - month.astype("datetime64[D]")).astype(np.int64) + 1
    month_n = (month - year.astype("datetime64[M]")).astype(np.int64) + 1
    year_n = year.astype(np.int64) + 1970
    return _fixed_text(
        [_digits(day_n, 2), "-", _digits(month_n, 2), "-", _digits(year_n, 4)], mask=missing
    )


def _citizens_text(citizens: pd.DataFrame) -> pa.Table:
    """The typed citizens as the export's cells: every column a string, null = empty cell."""
    cols = {}
    for name in CITIZEN_COLUMNS:
        s = citizens[name]
        if name in FLAG_COLUMNS:  # `x` for true; empty for false and for not recorded
            values = s.fillna(False).to_numpy(dtype=bool)
            cols[name] = pa.array(np.where(values, "x", None), pa.string())
        elif name == "reviewed":
            cols[name] = pa.array(np.where(s.to_numpy(dtype=bool), "ja", "nej"), pa.string())
        elif name in ("birth_year", "municipality_code", "departments_involved"):
            cols[name] = pc.cast(pa.array(s.to_numpy(dtype=np.int64)), pa.string())
        else:
            cols[name] = _empty_to_null(_str_array(s))
    return pa.table(cols)


def _episodes_text(episodes: pd.DataFrame) -> pa.Table:
    """The typed episodes as the export's cells (dates dd-mm-yyyy)."""
    return pa.table({
        "citizen_id": _str_array(episodes["citizen_id"]),
        "start_date": _date_text(episodes["start_date"]),
        "end_date": _date_text(episodes["end_date"]),
        "benefit": _str_array(episodes["benefit"]),
        "match_group": _empty_to_null(_str_array(episodes["match_group"])),
    })  # fmt: skip


@dataclass(frozen=True)
class DirtyRow:
    """One appended row of `dirty=True` mode. `offset` counts from the first appended row of
    its table; the row starts on file line `clean_rows + 2 + offset` (the embedded-newline
    note is the last citizen row, so no earlier line number moves). `reasons` are the data
    contract's quarantine reason codes the row should get, one per problem, `()` for a valid
    row that is merely awkward."""

    table: str
    offset: int
    description: str
    reasons: tuple[tuple[str, str], ...]  # (column, reason code)


DIRTY_ROWS: tuple[DirtyRow, ...] = (
    DirtyRow("citizens", 0, "birth_year '19x0' and sex 'X'",
             (("birth_year", "unparseable_integer"), ("sex", "out_of_domain"))),
    DirtyRow("citizens", 1, "birth_year 1850 and alcohol 'måske'",
             (("birth_year", "out_of_domain"), ("alcohol", "out_of_domain"))),
    DirtyRow("citizens", 2, "birth_year empty", (("birth_year", "missing_required"),)),
    DirtyRow("citizens", 3, "first of two rows with one citizen_id",
             (("citizen_id", "duplicate_id"),)),
    DirtyRow("citizens", 4, "second of two rows with one citizen_id",
             (("citizen_id", "duplicate_id"),)),
    DirtyRow("citizens", 5, "valid; note holds the CPR-like number 010190-1234 (masked)", ()),
    DirtyRow("citizens", 6, "valid; note holds a line break (quoted field)", ()),
    DirtyRow("episodes", 0, "start_date 31-02-2013", (("start_date", "unparseable_date"),)),
    DirtyRow("episodes", 1, "end_date 2013-13-01", (("end_date", "unparseable_date"),)),
    DirtyRow("episodes", 2, "benefit 'pension'", (("benefit", "out_of_domain"),)),
    DirtyRow("episodes", 3, "start_date empty", (("start_date", "missing_required"),)),
    DirtyRow("episodes", 4, "benefit empty", (("benefit", "missing_required"),)),
    DirtyRow("episodes", 5, "citizen_id not in citizens (orphan)",
             (("citizen_id", "unknown_citizen"),)),
    DirtyRow("episodes", 6, "end_date before start_date", (("end_date", "end_before_start"),)),
    DirtyRow("episodes", 7, "episode of the duplicated citizen_id",
             (("citizen_id", "unknown_citizen"),)),
    DirtyRow("episodes", 8, "episode of the duplicated citizen_id",
             (("citizen_id", "unknown_citizen"),)),
    DirtyRow("episodes", 9, "valid; ongoing spell of the CPR-note citizen", ()),
    DirtyRow("episodes", 10, "valid; ongoing spell of the line-break-note citizen", ()),
)  # fmt: skip
CPR_LIKE_IN_DIRTY_NOTE = "010190-1234"


def _dirty_tables(n: int, ref: dt.date) -> tuple[pa.Table, pa.Table]:
    """The appended rows of DIRTY_ROWS, as text. Ids after the clean ones; the first clean
    citizen owns the bad spells (they are quarantined, so its loaded history is unchanged)."""
    w = _id_width(n)

    def cid(k: int) -> str:
        return f"B{k:0{w}d}"

    ref_text = ref.strftime("%d-%m-%Y")
    blank = dict.fromkeys(FLAG_COLUMNS, "")
    base = {"birth_year": "1980", "sex": "K", "municipality_code": str(FAXE_MUNICIPALITY_CODE),
            "reviewed": "ja", **blank, "departments_involved": "1", "notes": ""}  # fmt: skip
    rows = [
        {**base, "citizen_id": cid(n + 1), "birth_year": "19x0", "sex": "X"},
        {**base, "citizen_id": cid(n + 2), "birth_year": "1850", "alcohol": "måske"},
        {**base, "citizen_id": cid(n + 3), "birth_year": ""},
        {**base, "citizen_id": cid(n + 4), "sex": "M"},
        {**base, "citizen_id": cid(n + 4), "birth_year": "1981"},
        {**base, "citizen_id": cid(n + 5),
         "notes": f"Borger oplyste ved en fejl cpr.nr. {CPR_LIKE_IN_DIRTY_NOTE} i telefonen."},
        {**base, "citizen_id": cid(n + 6),
         "notes": "Samtale afholdt.\nBorger ønsker at komme i praktik; opfølgning aftalt."},
    ]  # fmt: skip
    first = cid(1)
    spell = {"citizen_id": first, "start_date": "01-03-2013", "end_date": "30-06-2013",
             "benefit": "kontanthjaelp", "match_group": "3"}  # fmt: skip
    episodes = [
        {**spell, "start_date": "31-02-2013"},
        {**spell, "end_date": "2013-13-01"},
        {**spell, "benefit": "pension"},
        {**spell, "start_date": ""},
        {**spell, "benefit": ""},
        {**spell, "citizen_id": cid(n + 7)},
        {**spell, "start_date": "01-06-2015", "end_date": "01-05-2015",
         "match_group": "aktivitetsparat"},
        {**spell, "citizen_id": cid(n + 4), "start_date": "01-01-2020", "end_date": "",
         "match_group": "aktivitetsparat"},
        {**spell, "citizen_id": cid(n + 4)},
        {**spell, "citizen_id": cid(n + 5), "start_date": ref_text, "end_date": "",
         "match_group": "aktivitetsparat"},
        {**spell, "citizen_id": cid(n + 6), "start_date": ref_text, "end_date": "",
         "match_group": "aktivitetsparat"},
    ]  # fmt: skip
    cit = pa.Table.from_pylist(rows).select(list(CITIZEN_COLUMNS))
    ep = pa.Table.from_pylist(episodes).select(list(EPISODE_COLUMNS))

    def empty_as_null(table: pa.Table) -> pa.Table:
        return pa.table({c: _empty_to_null(table[c].combine_chunks()) for c in table.column_names})

    return empty_as_null(cit), empty_as_null(ep)


# ---------------------------------------------------------------------------------------------
# Calibration: measured from the tables, with the definitions' merge done in pandas
# ---------------------------------------------------------------------------------------------


def _day_numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(day numbers, missing mask) of a date column."""
    values = s.to_numpy(dtype="datetime64[s]")
    missing = np.isnat(values)
    days = values.astype("datetime64[D]").view(np.int64)
    return np.where(missing, 0, days).astype(np.int32), missing


def _stretches(cit: np.ndarray, start: np.ndarray, end: np.ndarray, gap: int) -> pd.DataFrame:
    """Merge spells per citizen (definitions §2): in order of start, a spell joins the stretch
    so far when it starts at most gap + 1 days after the stretch's latest end so far.
    One row per stretch: cit, first, last."""
    order = np.lexsort((start, cit))
    df = pd.DataFrame({"cit": cit[order], "s": start[order], "e": end[order]})
    latest = df.groupby("cit", sort=False)["e"].cummax()
    prev_latest = latest.groupby(df["cit"], sort=False).shift()
    new = prev_latest.isna() | (df["s"] - prev_latest > gap + 1)
    df["stretch"] = new.cumsum()
    return df.groupby("stretch", sort=True).agg(
        cit=("cit", "first"), first=("s", "min"), last=("e", "max")
    )


def per_citizen(citizens: pd.DataFrame, episodes: pd.DataFrame, reference_date: dt.date):
    """Per citizen (same row order as `citizens`): in_scope, course_class, m3_days, from the
    tables alone (definitions §2, §3, §7 with the default thresholds)."""
    R = _days(reference_date)
    n = len(citizens)
    ids = _str_array(citizens["citizen_id"])
    cit = pc.index_in(_str_array(episodes["citizen_id"]), value_set=ids)
    cit = pc.fill_null(cit, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    start, start_na = _day_numbers(episodes["start_date"])
    raw_end, open_ = _day_numbers(episodes["end_date"])
    keep = (cit >= 0) & ~start_na & (start <= R)  # §7: spells starting after R are ignored
    end = np.where(open_, R, np.minimum(raw_end, R)).astype(np.int32)  # ongoing: to R
    benefit, group = _str_array(episodes["benefit"]), _str_array(episodes["match_group"])

    def mask(arr: pa.Array) -> np.ndarray:
        return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)

    support = keep & ~mask(pc.is_in(benefit, value_set=pa.array(NON_SUPPORT)))
    courses = _stretches(cit[support], start[support], end[support], COURSE_GAP_DAYS)
    n_courses = np.bincount(courses["cit"], minlength=n)
    length = (courses["last"] - courses["first"] + 1).to_numpy()
    single_len = np.zeros(n, np.int64)
    single_len[courses["cit"].to_numpy()] = length  # meaningful only where n_courses == 1
    course_class = np.select(
        [n_courses == 0, n_courses >= 2, single_len > LONG_COURSE_DAYS],
        ["no_history", "several_separate", "long_continuous"],
        "short_continuous",
    )

    m3_group = mask(pc.is_in(group, value_set=pa.array(M3_GROUPS)))
    is_m3 = keep & m3_group
    stretches = _stretches(cit[is_m3], start[is_m3], end[is_m3], COURSE_GAP_DAYS)
    covering = stretches[(stretches["first"] <= R) & (stretches["last"] >= R)]
    m3_days = np.zeros(n, np.int64)
    m3_days[covering["cit"].to_numpy()] = (covering["last"] - covering["first"] + 1).to_numpy()

    # §3: the group of the covering spell that started last (ties: later end, later row);
    # spells without a group do not count.
    cover = keep & (end >= R) & mask(pc.not_equal(group, ""))
    row = np.flatnonzero(cover)
    later_end = np.where(open_[row], np.iinfo(np.int64).max, raw_end[row])
    row = row[np.lexsort((row, later_end, start[row], cit[row]))]
    is_last = np.r_[cit[row][1:] != cit[row][:-1], True]  # the last row of each citizen
    in_scope = np.zeros(n, bool)
    in_scope[cit[row][is_last]] = m3_group[row][is_last]
    return pd.DataFrame({
        "in_scope": in_scope,
        "course_class": course_class,
        "m3_days": m3_days,
    }, index=citizens.index)  # fmt: skip


def _base_profile(c: pd.DataFrame) -> np.ndarray:
    """definitions §1, base profile."""
    flag = {k: c[k].fillna(False).to_numpy(dtype=bool) for k in
            ("psych_diagnosis", "psych_undiagnosed", "physical_illness")}  # fmt: skip
    return np.select(
        [flag["psych_diagnosis"], flag["psych_undiagnosed"], flag["physical_illness"]],
        ["diagnosed", "diffuse_psychiatric", "physically_ill"],
        "maybe_suitable",
    )


def calibration(
    citizens: pd.DataFrame, episodes: pd.DataFrame, reference_date: dt.date
) -> list[CalibrationItem]:
    """Achieved share of every TARGETS item, measured from the (typed, clean) tables."""
    pc_ = per_citizen(citizens, episodes, reference_date)

    def flag(name: str) -> np.ndarray:
        return citizens[name].fillna(False).to_numpy(dtype=bool)

    age = reference_date.year - citizens["birth_year"].to_numpy(dtype=np.int64)
    male = citizens["sex"].astype("object").to_numpy() == "M"
    scope = pc_["in_scope"].to_numpy()
    reviewed = scope & citizens["reviewed"].to_numpy(dtype=bool)
    base = _base_profile(citizens)
    long = pc_["course_class"].to_numpy() == "long_continuous"
    m3 = pc_["m3_days"].to_numpy()
    alcohol = flag("alcohol")
    drugs = flag("soft_drugs") | flag("hard_drugs")
    work, pension = flag("focus_ordinary_work"), flag("focus_pension_case")
    phys = reviewed & (base == "physically_ill")

    def share(values: np.ndarray, among: np.ndarray) -> float:
        return float(values[among].mean()) if among.any() else float("nan")

    achieved = {
        "in_m3_on_reference_date": share(scope, np.ones(len(scope), bool)),
        **{f"profile_{p}": share(base == p, reviewed) for p in BASE_PROFILES},
        "misuse_any": share(alcohol | drugs, reviewed),
        "alcohol_men_40_plus": share(male & (age >= 40), reviewed & alcohol),
        "drugs_men_under_30": share(male & (age < 30), reviewed & drugs),
        "maybe_suitable_age_20_29": share(
            (age >= 20) & (age <= 29), reviewed & (base == "maybe_suitable")
        ),
        "diffuse_age_40_plus": share(age >= 40, reviewed & (base == "diffuse_psychiatric")),
        "long_continuous": share(long, scope),
        "physically_ill_long_continuous": share(long, phys),
        "diffuse_long_continuous": share(long, reviewed & (base == "diffuse_psychiatric")),
        "diagnosed_long_continuous": share(long, reviewed & (base == "diagnosed")),
        "m3_1y_plus": share(m3 >= 365, scope),
        "m3_1_to_2y": share((m3 >= 365) & (m3 <= 729), scope),
        "motivated_work_or_education": share(
            flag("motivation_work") | flag("motivation_education"), reviewed
        ),
        "physically_ill_focus_work": share(work, phys),
        "physically_ill_focus_pension": share(pension, phys),
        "physically_ill_focus_unclear": share(~work & ~pension, phys),
    }
    return [CalibrationItem(t.name, t.target, achieved[t.name]) for t in TARGETS]


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def generate(
    n: int,
    seed: int,
    reference_date: dt.date,
    unreviewed_share: float = 0.2,
    dirty: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Citizens and episodes of a synthetic Faxe-like export.

    `unreviewed_share` is the share of citizens whose case was not reviewed (reviewed = nej,
    flags empty; their notes still follow their latent profile); it is drawn within each
    status on the reference date, so each status gets its share to within one citizen.
    Clean: typed frames (bool,
    nullable boolean flags, int, datetime64 dates, str). `dirty=True`: the cells exactly as
    the files hold them (every column text, '' = empty), with DIRTY_ROWS appended, because
    bad cells such as '19x0' have no typed form.
    """
    citizens, episodes = _typed(n, seed, reference_date, unreviewed_share)
    if not dirty:
        return citizens, episodes
    dcit, dep = _dirty_tables(n, reference_date)
    cit = _with_dirty(_citizens_text(citizens), dcit)
    ep = _with_dirty(_episodes_text(episodes), dep)
    return cit.to_pandas(), ep.to_pandas()


def _with_dirty(table: pa.Table, dirty: pa.Table) -> pa.Table:
    return pa.concat_tables([table, dirty.cast(table.schema)])


def _write_csv(path: Path, table: pa.Table, chunk: int = 131_072) -> None:
    """`;`-separated, Windows-1252, CRLF, header = canonical names. Arrow's CSV writer quotes
    every non-empty text cell (a quote inside is doubled), so a `;`, `"` or line break in a
    note stays inside its field; empty cells are written as nothing. Streamed in chunks."""
    options = pacsv.WriteOptions(
        include_header=False, delimiter=";", quoting_style="needed", eol="\r\n"
    )
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write((";".join(table.column_names) + "\r\n").encode("cp1252"))
        for batch in table.to_batches(max_chunksize=chunk):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(batch, sink, options)
            f.write(sink.getvalue().to_pybytes().decode("utf-8").encode("cp1252"))
    tmp.replace(path)


def write_demo(
    out_dir: Path,
    n: int = 10_000,
    seed: int = 42,
    reference_date: dt.date | None = None,
    unreviewed_share: float = 0.2,
    dirty: bool = False,
    scenario: str = "faxe",
) -> DemoResult:
    """Write `citizens.csv` and `episodes.csv` into `out_dir` (created if missing).

    `unreviewed_share`: the share of citizens whose case was not reviewed (as in `generate`).

    Example: `write_demo(Path("data/raw"), n=10_000, seed=42)`.
    The calibration is measured on the clean rows (dirty rows would be quarantined).
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    ref = reference_date or dt.date.today()
    citizens, episodes = _typed(n, seed, ref, unreviewed_share)
    items = calibration(citizens, episodes, ref)
    dcit, dep = _dirty_tables(n, ref)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    citizens_path, episodes_path = out_dir / "citizens.csv", out_dir / "episodes.csv"
    # both files are written beside the old ones and renamed over them together at the end:
    # a demo stopped half-way (Ctrl-C, a full disk) leaves the previous pair, never a new
    # citizens.csv beside an old episodes.csv
    staged = [p.with_name(p.name + ".new") for p in (citizens_path, episodes_path)]
    try:
        # One table at a time, each freed once written, to bound memory at a million citizens.
        table = _citizens_text(citizens)
        del citizens
        table = _with_dirty(table, dcit) if dirty else table
        _write_csv(staged[0], table)
        n_citizens = table.num_rows
        del table
        table = _episodes_text(episodes)
        del episodes
        table = _with_dirty(table, dep) if dirty else table
        _write_csv(staged[1], table)
        staged[0].replace(citizens_path)
        staged[1].replace(episodes_path)
    except BaseException:
        for p in staged:
            p.unlink(missing_ok=True)
            p.with_name(p.name + ".tmp").unlink(missing_ok=True)  # _write_csv's own
        raise
    return DemoResult(citizens_path, episodes_path, n_citizens, table.num_rows, items)
