"""The demo's Danish case notes, composed per citizen so that a model cannot learn them by
heart (issue 15, item 7).

Reads nothing; `compose(rng, lat, ...)` returns one note per citizen (Arrow strings, null for
an empty note). Every note is put together from sentence banks that are themselves composed
(opener x phrasing x term, with misspelt and abbreviated spellings of the terms), and the
hard cases a keyword matcher gets wrong are there on purpose:

- a flag left unsaid (a fifth of the flags set have no sentence);
- negations for citizens *without* the flag ("Ingen tegn på alkoholmisbrug.");
- misuse or illness that is over ("Stoffri i 4 år.", "Ædru siden for 3 år siden");
- relatives' problems ("Moderen drikker.", "Broderen har skizofreni.");
- words that mean nothing (administrative noise).

Characters stay inside Windows-1252; no double quotes, no line breaks, no run of digits that
could form a CPR number; some sentences hold ',' and ';' (the CSV quoting is exercised).
The demo draws the notes from an RNG stream of their own, so the other columns (and every
published table) do not depend on how the notes are made.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _typos(term: str) -> tuple[str, ...]:
    """Two deterministic misspellings of a term: two letters swapped, one letter dropped."""
    if len(term) < 5 or " " in term:
        return ()
    i = len(term) // 2
    swapped = term[: i - 1] + term[i] + term[i - 1] + term[i + 1 :]
    j = len(term) // 3
    dropped = term[:j] + term[j + 1 :]
    return tuple(t for t in (swapped, dropped) if t != term)


def _spellings(terms: tuple[str, ...]) -> tuple[str, ...]:
    """Each term twice (the right spelling is the common one), then its misspellings."""
    out: list[str] = []
    for t in terms:
        out += [t, t, *_typos(t)]
    return tuple(out)


def _bank(templates: tuple[str, ...], terms: tuple[str, ...] = ("",), **more) -> tuple[str, ...]:
    """Every template filled with every spelling of every term ({t}), every opener ({o}),
    every relative ({r}) and every number of years ({k}) it names."""
    fill = {"t": _spellings(terms) if terms != ("",) else ("",), "o": _OPENERS,
            "r": _RELATIVES, "k": _YEARS, **more}  # fmt: skip
    out: list[str] = []
    for tpl in templates:
        keys = [k for k in fill if "{" + k + "}" in tpl]
        for values in itertools.product(*(fill[k] for k in keys)):
            s = tpl.format(**dict(zip(keys, values, strict=True)))
            out.append(s[0].upper() + s[1:])
    return tuple(dict.fromkeys(out))  # unique, in a fixed order


_OPENERS = ("", "", "", "Bgr. oplyser: ", "Borger fortæller: ", "Iflg. egen læge: ",
            "SB vurderer: ", "Obs: ", "Samtale d.d.: ", "Fra lægeattest: ", "Notat; ")
_RELATIVES = ("moderen", "faderen", "broderen", "søsteren", "kæresten", "ægtefællen",
              "sønnen", "datteren", "hendes mor", "hans far", "eks-manden")  # fmt: skip
_YEARS = ("2", "3", "4", "5", "7", "10", "mange")

# ---- physical illness ------------------------------------------------------------------------
_PHYS_TERMS = ("kroniske rygsmerter", "diskusprolaps", "gigt", "slidgigt", "KOL", "diabetes",
               "hjerteproblemer", "fibromyalgi", "piskesmæld", "sklerose", "migræne",
               "nakkesmerter", "astma", "epilepsi")  # fmt: skip
PHYS_POS = _bank(("{o}har {t}.", "{o}{t}, kan ikke løfte eller stå længe.",
                  "{t} begrænser arbejdsevnen.", "{o}lægen beskriver {t}.",
                  "Smerter pga. {t}; venter på speciallæge.", "{o}døjer med {t} i hverdagen.",
                  "Fysisk begrænset af {t}."), _PHYS_TERMS)  # fmt: skip
PHYS_NEG = _bank(("{o}ingen fysiske skavanker.", "Ingen helbredsmæssige begrænsninger.",
                  "{o}fysisk rask.", "Har ikke {t}.", "Ingen tegn på {t}.",
                  "Lægen finder ingen fysiske begrænsninger."), _PHYS_TERMS[:8])  # fmt: skip
PHYS_REL = _bank(("{r} har {t}.", "Passer {r}, som har {t}."), _PHYS_TERMS[:8])
PHYS_OVER = _bank(("Havde {t} for {k} år siden, nu helt rask.",
                   "Tidligere {t}, opereret med godt resultat og uden gener i dag."),
                  _PHYS_TERMS[:6])  # fmt: skip

# ---- psychiatric, diagnosed ------------------------------------------------------------------
_DIAG_TERMS = ("PTSD", "skizofreni", "bipolar lidelse", "svær depression", "ADHD",
               "personlighedsforstyrrelse", "OCD", "autisme", "paranoid psykose")  # fmt: skip
DIAG_POS = _bank(("{o}diagnosticeret med {t}.", "Har en {t}-diagnose.",
                  "Diagnosen {t} er stillet af psykiater.", "{o}dx: {t}.",
                  "Følges i distriktspsykiatrien pga. {t}.", "{o}har fået stillet diagnosen {t}.",
                  "Psykiater har diagnosticeret {t}, i medicinsk behandling."),
                 _DIAG_TERMS)  # fmt: skip
DIAG_NEG = _bank(("Ingen psykiatrisk diagnose.", "{o}ingen kendt psykisk lidelse.",
                  "Er ikke diagnosticeret med {t}.",
                  "Udredt for {t}, men diagnosen blev afkræftet."),
                 _DIAG_TERMS[:5])  # fmt: skip
DIAG_REL = _bank(("{r} har {t}.", "{r} er diagnosticeret med {t}."), _DIAG_TERMS[:6])

# ---- psychiatric, no diagnosis ---------------------------------------------------------------
_DIFF_TERMS = ("stress", "angst", "nedtrykthed", "søvnproblemer", "udbrændthed",
               "lavt selvværd", "depressive tanker", "uro")  # fmt: skip
DIFF_POS = _bank(("{o}mistanke om {t}, ikke udredt.", "Oplever {t}, afventer udredning.",
                  "{o}tegn på {t}, men endnu ingen diagnose.",
                  "Beskriver {t}; henvist til psykolog.", "{o}{t} uden diagnose.",
                  "Psykisk skrøbelig med {t}, behov for psykologisk vurdering."),
                 _DIFF_TERMS)  # fmt: skip
DIFF_NEG = _bank(("{o}ingen psykiske problemer.", "Afviser {t}.", "Ingen tegn på {t}.",
                  "Psykisk velfungerende."), _DIFF_TERMS[:5])  # fmt: skip
DIFF_REL = _bank(("{r} lider af {t}.", "{r} er ramt af {t} og fylder meget."), _DIFF_TERMS[:5])

# ---- misuse ----------------------------------------------------------------------------------
_ALC_TERMS = ("alkohol", "øl", "spiritus", "vin", "sprut")
ALC_POS = _bank(("{o}drikker dagligt.", "{o}dagligt forbrug af {t}.",
                 "Erkender et alkoholproblem.", "Lugtede af {t} ved samtalen.",
                 "{o}alkoholmisbrug gennem mange år.", "Drikker {k} øl om dagen.",
                 "Har tidligere fået Antabus, drikker stadig.",
                 "Alk.misbrug, ønsker ikke behandling.",
                 "Drikker for meget iflg. egen læge.", "{o}drikker meget i weekenderne."),
                _ALC_TERMS)  # fmt: skip
ALC_NEG = _bank(("{o}drikker ikke.", "Ingen tegn på alkoholmisbrug.", "Intet alkoholforbrug.",
                 "Afviser forbrug af {t}.", "Har aldrig haft problemer med {t}."),
                _ALC_TERMS)  # fmt: skip
ALC_REL = _bank(("{r} drikker.", "{r} er alkoholiker.", "{r} har et alkoholproblem.",
                 "Vokset op med {r}, der drak."))  # fmt: skip
ALC_OVER = _bank(("Tidligere alkoholmisbrug, ædru i {k} år.",
                  "Har ikke drukket i {k} år; går til AA.",
                  "Stoppede med at drikke for {k} år siden.",
                  "Tørlagt alkoholiker, ædru i {k} år."))
_SOFT_TERMS = ("hash", "cannabis", "pot", "joints")
SOFT_POS = _bank(("{o}ryger {t} dagligt.", "{o}forbrug af {t}.", "Ryger {t} for at kunne sove.",
                  "Henvist til misbrugscentret pga. {t}.",
                  "Hashmisbrug, ryger flere gange om dagen."),
                 _SOFT_TERMS)  # fmt: skip
_HARD_TERMS = ("kokain", "amfetamin", "heroin", "metadon", "piller", "ecstasy")
HARD_POS = _bank(("{o}misbrug af {t}.", "I substitutionsbehandling med metadon.",
                  "Bruger {t} i perioder.", "Har et aktivt forbrug af {t}.",
                  "Blandingsmisbrug med bl.a. {t}."), _HARD_TERMS)  # fmt: skip
DRUG_NEG = _bank(("{o}ingen tegn på misbrug.", "Benægter stofmisbrug.", "Intet kendt misbrug.",
                  "Har aldrig taget stoffer.", "Ingen tegn på brug af {t}."),
                 _SOFT_TERMS[:2] + _HARD_TERMS[:3])  # fmt: skip
DRUG_REL = _bank(("{r} er stofmisbruger.", "{r} ryger hash.", "{r} har et misbrug af {t}."),
                 _HARD_TERMS[:3])  # fmt: skip
DRUG_OVER = _bank(("Stoffri i {k} år.", "Tidligere misbrug af {t}, stoffri i {k} år.",
                   "Har ikke rørt {t} i {k} år.", "Afsluttet misbrugsbehandling for {k} år siden;"
                   " stoffri."), _SOFT_TERMS[:2] + _HARD_TERMS[:3])  # fmt: skip

# ---- no problems (maybe suitable) and noise ---------------------------------------------------
FIT = _bank(("{o}vurderes tæt på arbejdsmarkedet.",
             "Ingen væsentlige helbredsmæssige begrænsninger.",
             "Har brug for hjælp til jobsøgning.", "Fremstår ressourcestærk, mangler netværk.",
             "Møder stabilt op og virker klar til en aktiv indsats.",
             "{o}kan deltage i virksomhedspraktik.", "Har afbrudt en erhvervsuddannelse."))
NOISE = _bank(("Tlf. samtale.", "Mødt til tiden.", "Ny SB på sagen.", "Sendt brev; afventer svar.",
               "Opfølgning om tre mdr.", "Ref. sendt til bgr.", "Udeblev fra samtalen.",
               "Bisidder deltog.", "Ingen ændringer siden sidst.", "Statusattest indhentet.",
               "Aftalt nyt møde, kl. ni.", "Plan revideret sammen med bgr.",
               "Snak om vejret og weekenden.", "Har det svært for tiden.",
               "Klager over træthed.", "Jf. tidligere notat."))  # fmt: skip


def _join(arrays: list[pa.Array]) -> pa.Array:
    """The non-null texts of each row joined by single spaces. Not with
    `null_handling="skip"`: pyarrow 26 drops a row whose arguments are all null there."""
    joined = pc.binary_join_element_wise(*arrays, " ", null_handling="replace",
                                         null_replacement="")  # fmt: skip
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(joined, " {2,}", " "))


def compose(rng: np.random.Generator, lat: dict, extra: list, chunk: int = 200_000) -> pa.Array:
    """One note per citizen from the latent flags (`lat["flags"]`, also for unreviewed
    citizens: the truth lives on in the notes). `extra`: further (options, index) parts to
    append (the barrier, focus and motivation sentences of `pipeline.demo`). Vectorised: a
    sentence is chosen per citizen and bank by indexing, joined in chunks to bound memory."""
    f = lat["flags"]
    n = len(f["alcohol"])
    parts: list[tuple[tuple[str, ...], np.ndarray]] = []

    def bern(p: float | np.ndarray) -> np.ndarray:
        return rng.random(n) < p

    def pick(options: tuple[str, ...], present: np.ndarray) -> None:
        idx = rng.integers(0, len(options), n, dtype=np.int32)
        parts.append((options, np.where(present, idx, -1).astype(np.int32)))

    phys, diag, diff = f["physical_illness"], f["psych_diagnosis"], f["psych_undiagnosed"]
    alc, soft, hard = f["alcohol"], f["soft_drugs"], f["hard_drugs"]
    drugs = soft | hard
    anything = phys | diag | diff | alc | drugs
    said = 0.8  # a fifth of the flags set are left unsaid
    pick(NOISE, bern(0.35))
    pick(FIT, ~anything & bern(0.6))
    pick(DIAG_POS, diag & bern(said))
    pick(DIFF_POS, diff & bern(said))
    pick(PHYS_POS, phys & bern(said))
    pick(PHYS_POS, phys & bern(0.15))  # a second physical complaint, now and then
    pick(ALC_POS, alc & bern(said))
    pick(SOFT_POS, soft & bern(said))
    pick(HARD_POS, hard & bern(said))
    # the hard cases: said about citizens without the flag
    pick(PHYS_NEG, ~phys & bern(0.10))
    pick(PHYS_REL, ~phys & bern(0.05))
    pick(PHYS_OVER, ~phys & bern(0.05))
    pick(DIAG_NEG, ~diag & bern(0.06))
    pick(DIAG_REL, ~diag & bern(0.05))
    pick(DIFF_NEG, ~diff & ~diag & bern(0.08))
    pick(DIFF_REL, ~diff & bern(0.05))
    pick(ALC_NEG, ~alc & bern(0.10))
    pick(ALC_REL, ~alc & bern(0.07))
    pick(ALC_OVER, ~alc & bern(0.05))
    pick(DRUG_NEG, ~drugs & bern(0.10))
    pick(DRUG_REL, ~drugs & bern(0.05))
    pick(DRUG_OVER, ~drugs & bern(0.05))
    parts.extend(extra)
    pick(NOISE, bern(0.25))

    # a citizen's sentences in a shuffled order of banks would need a loop per citizen; a
    # random rotation of the bank order (one of 4) is enough that position carries no flag
    rotation = rng.integers(0, 4, n)
    dictionaries = [pa.array(options, pa.string()) for options, _ in parts]
    chunks = []
    for lo in range(0, n, chunk):
        arrays = [
            d.take(pa.array(i[lo : lo + chunk], mask=i[lo : lo + chunk] < 0))
            for d, (_, i) in zip(dictionaries, parts, strict=True)
        ]
        rot = rotation[lo : lo + chunk]
        k = len(arrays)
        shifted = []
        for r in range(4):
            order = [arrays[(j + r * k // 4) % k] for j in range(k)]
            shifted.append(_join(order))
        joined = shifted[0]
        for r in range(1, 4):
            joined = pc.if_else(pa.array(rot == r), shifted[r], joined)
        chunks.append(pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined))
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())
