"""SYNTHETIC discharge-summary-style notes in n2c2-2018 Track 2 brat format.

Nothing here is real patient data: every note is assembled from templates and word lists
by a seeded random generator, and its first line says so::

    SYNTHETIC NOTE - not real patient data

The notes carry all nine n2c2 types (Drug, Strength, Form, Dosage, Frequency, Route,
Duration, Reason, ADE), medication lists ("1. Metoprolol tartrate 25 mg tablet PO BID")
and narrative sentences ("She was started on X for Y", "Started X 25 mg PO BID for Y",
"He developed Z after X"), and n2c2's relations: every attribute linked to its drug
(``R1<TAB>Strength-Drug Arg1:T5 Arg2:T3``), with the cases that make linking hard: several
drugs on one list line, an attribute shared by two drugs ("Senna 8.6 mg and Colace 100 mg PO
BID"), a Reason or ADE told in another sentence than its drug, and drugs without attributes. About
three quarters all-O sentences (exam, labs, instructions) as in n2c2, and a few
discontinuous spans (coordinations such as "liver and kidney injury", and entities that a
wrapped line breaks in two, written as brat fragments) and overlapping spans (a drug
inside "digoxin toxicity"). Case varies as in real notes: drug names are mostly lower case in
running prose ("She was started on metoprolol"), capitalised at a sentence start, and lower case,
capitalised or ALL CAPS in a medication list (one style per list); abbreviated routes and
frequencies are "PO BID" or "po bid" by the note's habit; some notes have ALL CAPS section
titles. The vocabulary is varied so a model has something to learn yet can generalise; 15% of
the drugs and adverse events appear only in test notes, so the test split measures
generalisation to unseen names. Used by ``prepare_n2c2.py --synthetic N`` and by the tests.

**Hard mode** (``generate_notes(..., hard=True)``, ``write_synthetic_corpus(..., hard=True)``, ``prepare_n2c2.py
--synthetic N --synthetic_hard``): on the default notes the nearest-drug rule (``relations.nearest_drug_rule``) is
nearly always right, so they cannot show whether a learnt relation model beats it. The hard notes are the same kind
of note (sections, lists, about three quarters all-O sentences, the same vocabulary and held-out names), but their
hospital course is mostly sentences about two or three drugs and about three quarters of their medication list lines
hold two or more, as real medication narratives do (:data:`HARD_NARRATIVE_MIX`, :data:`HARD_LIST_MIX`): several drugs in
one sentence ("Started metoprolol 25 mg PO BID and lisinopril 10 mg daily for hypertension"), attributes before
their drug ("added 25 mg of metoprolol", "for hypertension, lisinopril ... was started", "12.5 mg PO BID
metoprolol was added"), another drug in between ("Metoprolol, which had replaced atenolol, ...", "lisinopril
(previously on losartan) 10 mg daily"), crossing strengths ("... at 25 mg and 10 mg, respectively, both PO daily"),
shared attributes ("Senna and Colace PO BID for constipation"), a reason or adverse event in the next sentence ("The
increase was for rate control.", "She had developed angioedema."), held and stopped drugs whose attributes are their
own ("Held warfarin for supratherapeutic INR; started enoxaparin 80 mg SC BID"), and as many sentences where the
nearest drug is right but other drugs compete. What decides the right drug is in the words and the sentence order,
never chance. Every relation stays within ``relations.candidate_pairs``' reach (a hard paragraph wraps only where a
line break cannot end a sentence), and Arg1 is the attribute, Arg2 the drug. Measured on 200 hard test notes with
gold entities (strict micro-F1, ``n2c2_scoring.score_relations``): the rule 79.8, every candidate linked 66.7,
candidate recall 100% for every type (default notes: 97.4, 86.0, 99.6%, where a wrap before "PO" or "25 mg"
splits a sentence as the sentence splitter reads it). Hard notes are named
``synthetic-hard-{split}-NNNN`` and drawn from their own seed; the default notes are unchanged by this mode.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .brat import split_at_line_breaks, write_brat_entities
from .folder_safety import Manifest
from .tagging import DRUG_TYPE, relation_type

SYNTHETIC_HEADER = "SYNTHETIC NOTE - not real patient data"

# name variants | strengths | forms | routes | reasons (indications)
_DRUG_TABLE = """
Metoprolol tartrate/Metoprolol/Lopressor | 12.5 mg,25 mg,50 mg | tablet | PO | hypertension,atrial fibrillation,rate control,tachycardia
Metoprolol succinate/Toprol XL | 25 mg,50 mg,100 mg | extended release tablet,tablet | PO | hypertension,heart failure
Lisinopril/Zestril | 2.5 mg,5 mg,10 mg,20 mg,40 mg | tablet | PO | hypertension,heart failure,proteinuria
Losartan/Cozaar | 25 mg,50 mg,100 mg | tablet | PO | hypertension
Amlodipine/Norvasc | 2.5 mg,5 mg,10 mg | tablet | PO | hypertension
Hydrochlorothiazide/HCTZ | 12.5 mg,25 mg | tablet,capsule | PO | hypertension,edema
Furosemide/Lasix | 20 mg,40 mg,80 mg | tablet,injection | PO,IV | fluid overload,edema,heart failure,volume overload
Torsemide | 10 mg,20 mg | tablet | PO | edema,ascites
Spironolactone/Aldactone | 25 mg,50 mg | tablet | PO | ascites,heart failure
Carvedilol/Coreg | 3.125 mg,6.25 mg,12.5 mg,25 mg | tablet | PO | heart failure,hypertension
Diltiazem/Cardizem | 30 mg,60 mg,120 mg | tablet,extended release capsule | PO | atrial fibrillation,rate control
Digoxin | 0.125 mg,0.25 mg | tablet | PO | atrial fibrillation
Amiodarone | 200 mg,400 mg | tablet | PO | atrial fibrillation,ventricular tachycardia
Aspirin/ASA | 81 mg,325 mg | tablet,chewable tablet,enteric coated tablet | PO | coronary artery disease,CAD,stroke prevention,chest pain
Clopidogrel/Plavix | 75 mg | tablet | PO | coronary stent,CAD,NSTEMI
Atorvastatin/Lipitor | 10 mg,20 mg,40 mg,80 mg | tablet | PO | hyperlipidemia,CAD
Simvastatin/Zocor | 10 mg,20 mg,40 mg | tablet | PO | hyperlipidemia
Pravastatin | 20 mg,40 mg | tablet | PO | hyperlipidemia
Warfarin/Coumadin | 1 mg,2 mg,2.5 mg,5 mg | tablet | PO | atrial fibrillation,DVT,pulmonary embolism,mechanical valve
Apixaban/Eliquis | 2.5 mg,5 mg | tablet | PO | atrial fibrillation,DVT
Heparin | 5000 units | injection,solution | SC,subcutaneous,IV | DVT prophylaxis,pulmonary embolism
Enoxaparin/Lovenox | 40 mg,60 mg,80 mg | syringe,injection | SC,subcutaneous | DVT prophylaxis,DVT
Insulin glargine/Lantus | 10 units,20 units,30 units | injection,pen | SC,subcutaneous | diabetes,type 2 diabetes,hyperglycemia
Insulin lispro/Humalog | 4 units,6 units,8 units | injection | SC | hyperglycemia,diabetes
Metformin/Glucophage | 500 mg,850 mg,1000 mg | tablet | PO | type 2 diabetes,diabetes
Glipizide | 5 mg,10 mg | tablet | PO | diabetes
Levothyroxine/Synthroid | 25 mcg,50 mcg,75 mcg,100 mcg | tablet | PO | hypothyroidism
Omeprazole/Prilosec | 20 mg,40 mg | capsule,delayed release capsule | PO | GERD,reflux,GI prophylaxis
Pantoprazole/Protonix | 40 mg | tablet,delayed release tablet,injection | PO,IV | GERD,GI bleed,GI prophylaxis
Famotidine/Pepcid | 20 mg | tablet | PO,IV | GERD,reflux
Ondansetron/Zofran | 4 mg,8 mg | tablet,disintegrating tablet,injection | PO,IV | nausea,vomiting
Metoclopramide/Reglan | 5 mg,10 mg | tablet | PO,IV | nausea,gastroparesis
Docusate sodium/Colace | 100 mg | capsule | PO | constipation
Senna/Senokot | 8.6 mg | tablet | PO | constipation
Polyethylene glycol/Miralax | 17 gram | powder,packet | PO | constipation
Lactulose | 30 mL,20 gram | solution,syrup | PO | hepatic encephalopathy,constipation
Acetaminophen/Tylenol | 325 mg,500 mg,650 mg | tablet,caplet | PO,PR | pain,fever,headache
Oxycodone/Roxicodone | 5 mg,10 mg | tablet | PO | pain,back pain
Hydromorphone/Dilaudid | 0.5 mg,1 mg,2 mg | tablet,injection | PO,IV | pain
Morphine sulfate/Morphine | 2 mg,4 mg,15 mg | injection,tablet | IV,PO | pain
Tramadol | 50 mg | tablet | PO | pain
Ibuprofen/Motrin | 400 mg,600 mg | tablet | PO | pain,fever
Gabapentin/Neurontin | 100 mg,300 mg,600 mg | capsule | PO | neuropathy,neuropathic pain
Prednisone | 5 mg,10 mg,20 mg,40 mg,60 mg | tablet | PO | COPD exacerbation,gout,asthma exacerbation
Methylprednisolone/Solu-Medrol | 40 mg,125 mg | injection | IV | COPD exacerbation
Albuterol/Albuterol sulfate | 90 mcg/actuation,2.5 mg/3 mL | inhaler,nebulizer solution | inhaled,nebulized | wheezing,shortness of breath,COPD
Ipratropium/Atrovent | 0.02 %,17 mcg/actuation | nebulizer solution,inhaler | inhaled,nebulized | COPD,wheezing
Tiotropium/Spiriva | 18 mcg | capsule with inhalation device | inhaled | COPD
Fluticasone/Flovent | 110 mcg/actuation,50 mcg | inhaler,nasal spray | inhaled,nasal | asthma,allergic rhinitis
Vancomycin | 1 gram,1250 mg,125 mg | injection,capsule | IV,PO | MRSA bacteremia,cellulitis,C. diff colitis,pneumonia
Piperacillin-tazobactam/Zosyn | 4.5 gram,3.375 gram | injection | IV | pneumonia,sepsis,intra-abdominal infection
Ceftriaxone/Rocephin | 1 gram,2 gram | injection | IV | pneumonia,urinary tract infection,UTI,meningitis
Cefepime | 1 gram,2 gram | injection | IV | pneumonia,sepsis
Levofloxacin/Levaquin | 500 mg,750 mg | tablet,injection | PO,IV | pneumonia,UTI
Ciprofloxacin/Cipro | 250 mg,500 mg | tablet | PO | UTI,urinary tract infection
Azithromycin/Zithromax | 250 mg,500 mg | tablet | PO,IV | pneumonia,bronchitis
Metronidazole/Flagyl | 500 mg | tablet,injection | PO,IV | C. diff colitis,intra-abdominal infection
Sulfamethoxazole-trimethoprim/Bactrim DS/Bactrim | 800-160 mg,400-80 mg | tablet | PO | UTI,PCP prophylaxis,cellulitis
Cephalexin/Keflex | 500 mg | capsule | PO | cellulitis
Nitrofurantoin/Macrobid | 100 mg | capsule | PO | UTI
Fluconazole/Diflucan | 100 mg,200 mg | tablet | PO,IV | thrush,candidiasis,yeast infection
Acyclovir | 400 mg,800 mg | tablet | PO | herpes zoster,HSV
Sertraline/Zoloft | 25 mg,50 mg,100 mg | tablet | PO | depression,anxiety
Citalopram/Celexa | 10 mg,20 mg | tablet | PO | depression
Trazodone | 50 mg | tablet | PO | insomnia
Quetiapine/Seroquel | 25 mg,50 mg | tablet | PO | agitation,delirium
Haloperidol/Haldol | 0.5 mg,1 mg,2 mg | tablet,injection | PO,IV,IM | agitation,delirium
Lorazepam/Ativan | 0.5 mg,1 mg | tablet,injection | PO,IV | anxiety,alcohol withdrawal,seizure
Levetiracetam/Keppra | 500 mg,750 mg,1000 mg | tablet | PO,IV | seizures,seizure prophylaxis
Phenytoin/Dilantin | 100 mg | capsule | PO | seizures
Allopurinol | 100 mg,300 mg | tablet | PO | gout
Colchicine | 0.6 mg | tablet | PO | gout flare
Tamsulosin/Flomax | 0.4 mg | capsule | PO | BPH,urinary retention
Finasteride | 5 mg | tablet | PO | BPH
Potassium chloride/KCl | 20 mEq,40 mEq | tablet,extended release tablet,packet | PO,IV | hypokalemia
Magnesium oxide | 400 mg | tablet | PO | hypomagnesemia
Calcium carbonate/Tums | 500 mg,1250 mg | chewable tablet,tablet | PO | hypocalcemia,osteoporosis
Cholecalciferol/Vitamin D3 | 400 units,1000 units | tablet,capsule | PO | vitamin D deficiency
Folic acid | 1 mg | tablet | PO | folate deficiency
Thiamine | 100 mg | tablet,injection | PO,IV | alcohol use,thiamine deficiency
Ferrous sulfate | 325 mg | tablet | PO | iron deficiency anemia,anemia
Epoetin alfa/Epogen | 10000 units | injection | SC | anemia of CKD
Sevelamer/Renvela | 800 mg | tablet | PO | hyperphosphatemia
Nicotine patch/Nicotine | 14 mg/24 hr,21 mg/24 hr | patch,transdermal patch | transdermal,TD | smoking cessation,nicotine withdrawal
Lidocaine patch/Lidoderm | 5 % | patch,adhesive patch | topical,TD | back pain,rib fracture pain
Nitroglycerin | 0.4 mg | sublingual tablet,tablet | SL,sublingual | chest pain,angina
Isosorbide mononitrate/Imdur | 30 mg,60 mg | extended release tablet | PO | angina
Hydralazine | 10 mg,25 mg,50 mg | tablet,injection | PO,IV | hypertension
Clonidine | 0.1 mg,0.2 mg | tablet,patch | PO,TD | hypertension
Sucralfate/Carafate | 1 gram | tablet,suspension | PO | gastritis
Nystatin | 100000 unit/mL | suspension | PO | thrush
Mupirocin | 2 % | ointment | topical | skin infection
Hydrocortisone cream/Hydrocortisone | 1 %,2.5 % | cream | topical | rash,dermatitis
Donepezil/Aricept | 5 mg,10 mg | tablet | PO | dementia
"""


@dataclass(frozen=True)
class _Drug:
    names: tuple[str, ...]
    strengths: tuple[str, ...]
    forms: tuple[str, ...]
    routes: tuple[str, ...]
    reasons: tuple[str, ...]


def _parse_drug_table(table: str) -> list[_Drug]:
    drugs = []
    for line in table.strip().splitlines():
        names, strengths, forms, routes, reasons = (column.strip() for column in line.split("|"))
        drugs.append(_Drug(*(tuple(item.strip() for item in column.split(sep))
                             for column, sep in ((names, "/"), (strengths, ","), (forms, ","), (routes, ","),
                                                 (reasons, ",")))))
    return drugs


DRUGS = _parse_drug_table(_DRUG_TABLE)
ROUTE_VARIANTS = {"PO": ("PO", "PO", "by mouth", "oral", "p.o."), "IV": ("IV", "IV", "intravenously"),
                  "SC": ("SC", "subcut", "subcutaneously"), "SL": ("SL",), "PR": ("PR", "per rectum"),
                  "IM": ("IM",), "TD": ("TD",)}
FREQUENCIES = (
    "daily", "DAILY (Daily)", "once a day", "once daily", "every day", "BID", "BID (2 times a day)", "twice a day",
    "twice daily", "b.i.d.", "TID", "TID (3 times a day)", "three times a day", "t.i.d.", "QID", "four times a day",
    "Q4H", "Q6H", "Q8H", "Q12H", "Q24H", "q4h", "q6h", "q8h", "every 4 hours", "every 6 hours", "every 8 hours",
    "every 12 hours", "QHS", "at bedtime", "HS (at bedtime)", "QAM", "every morning", "every other day", "QOD",
    "once weekly", "with meals", "TID with meals", "Q6H as needed", "Q4H PRN", "PRN", "as needed", "q8h prn",
)
PRN_FREQUENCIES = ("as needed", "PRN", "Q6H as needed", "Q4H PRN", "q8h prn", "every 6 hours as needed")
DURATIONS = (
    "for 7 days", "for 10 days", "for 14 days", "for 5 days", "for 3 days", "for 5 more days", "for 2 more days",
    "x 7 days", "x5 days", "x 10 days", "for 2 weeks", "for one week", "for 1 month", "for 6 weeks",
    "for a total of 10 days", "for a total of 14 days", "for three days",
)
DOSAGES = ("One (1)", "Two (2)", "1", "2", "1-2", "one", "two", "half", "1/2", "Three (3)", "0.5")
ADES = (
    "rash", "hives", "pruritus", "nausea", "vomiting", "diarrhea", "hypotension", "bradycardia", "hyperkalemia",
    "hyponatremia", "acute kidney injury", "AKI", "thrombocytopenia", "hypoglycemia", "angioedema", "cough",
    "dizziness", "confusion", "delirium", "oversedation", "respiratory depression", "QT prolongation",
    "C. diff colitis", "GI bleed", "bleeding", "supratherapeutic INR", "elevated LFTs", "transaminitis",
    "myalgias", "rhabdomyolysis", "orthostatic hypotension", "urinary retention", "constipation",
    "lactic acidosis", "red man syndrome", "neutropenia", "hepatotoxicity", "lower extremity edema",
    "headache", "anaphylaxis", "lip swelling", "a diffuse maculopapular rash",
)
COORDINATED_ADES = (
    ("liver", "kidney", "injury"), ("lip", "tongue", "swelling"), ("hand", "foot", "rash"),
    ("upper", "lower extremity", "edema"), ("nausea", "abdominal", "pain"), ("arm", "chest", "rash"),
)
TOXICITY_DRUGS = ("digoxin", "lithium", "vancomycin", "phenytoin", "acetaminophen", "tacrolimus", "theophylline")
CONDITIONS = (
    "hypertension", "hyperlipidemia", "type 2 diabetes", "CAD", "atrial fibrillation", "COPD", "CHF", "CKD stage 3",
    "GERD", "hypothyroidism", "depression", "osteoarthritis", "BPH", "asthma", "obesity", "gout", "anemia",
    "prior stroke", "obstructive sleep apnea", "cirrhosis",
)
COMPLAINTS = (
    "chest pain", "shortness of breath", "fevers", "abdominal pain", "a fall", "confusion", "weakness",
    "lower extremity swelling", "palpitations", "cough", "dysuria", "syncope", "melena", "back pain",
)
# Case, as real notes write it (only the case of a word changes, never the word). Names are
# written capitalised in the table above; a list or a note draws its style from these tuples.
PROSE_LOWER_SHARE = 0.75  # "started metoprolol": a drug name inside a sentence, lower case this often
LIST_NAME_CASES = ("lower", "lower", "capitalised", "capitalised", "upper", "mixed")  # one per medication list
ABBREVIATION_LOWER_SHARES = (0.1, 0.5, 0.9)  # a note's habit: "PO BID" or "po bid"
UPPER_TITLES_SHARE = 0.3  # notes with "DISCHARGE MEDICATIONS:" rather than "Discharge Medications:"

# Hard mode (``generate_notes(..., hard=True)``): the mix of its templates, by name (``_Generator._narrative_<name>``
# and :meth:`_Generator.hard_list_item`) and weight. Tuned so that on 200 test notes with gold entities the
# nearest-drug rule scores about 80 strict micro-F1 and linking every candidate pair well under it (see the
# module docstring); each template's comment says what the rule gets wrong there.
HARD_NARRATIVE_MIX = (
    # the rule wrong (an attribute before its drug, a drug in between, crossing, shared, the next sentence)
    ("two_started", 1), ("dose_of", 4), ("reason_first", 2), ("attributes_first", 4), ("replaced", 3),
    ("previously_on", 3), ("respectively", 2), ("shared", 1), ("the_increase", 2), ("stopped_then_developed", 2),
    ("switched_because", 2), ("noted_then_started", 2),
    # the rule right, every candidate wrong (two or three drugs, each attribute after its own)
    ("each_reason", 5), ("three_continued", 5), ("held", 2), ("held_with_dose", 2), ("this_was_for", 2),
    ("stopped_instead", 2),
)
HARD_NARRATIVES = (3, 6)  # sentences (groups of one to three) from HARD_NARRATIVE_MIX in a note's hospital course
HARD_LIST_SHARE = 0.7  # medication list lines from HARD_LIST_MIX; the others are the usual ones
HARD_LIST_MIX = (("previously_on", 4), ("respectively", 2), ("shared", 1), ("shared_strengths", 1),  # rule wrong
                 ("several", 5), ("held", 2))  # rule right


def _lower(text: str) -> str:
    """Lower-case the capitalised words ("Metoprolol tartrate", "Solu-Medrol"); acronyms (HCTZ, KCl, XL) stay."""
    return re.sub(r"\b[A-Z][a-z]+\b", lambda match: match.group().lower(), text)


def _lower_abbreviations(text: str) -> str:
    """"PO" -> "po", "Q4H PRN" -> "q4h prn"; the Sig: style with a gloss ("BID (2 times a day)") stays."""
    return text if "(" in text else re.sub(r"\b[A-Z0-9]*[A-Z][A-Z0-9]*\b", lambda match: match.group().lower(), text)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence_start(sentence: list) -> list:
    """Capitalise the first letter of a sentence, entity or not ("Metoprolol was started ...")."""
    first = sentence[0]
    return [_capitalise(first) if isinstance(first, str) else (*first[:2], _capitalise(first[2]), *first[3:]),
            *sentence[1:]]


NAMES = ("Smith", "Lee", "Garcia", "Patel", "Nguyen", "Brown", "Cohen", "Okafor", "Rossi", "Kim", "Silva", "Meyer")


@dataclass
class SyntheticNote:
    """A generated note: ``entities`` are ``(type, fragments)`` in brat offsets of ``text``; ``relations`` are
    ``(type, attribute, drug)`` with indices into ``entities``."""

    doc_id: str
    text: str
    entities: list[tuple[str, tuple[tuple[int, int], ...]]]
    relations: list[tuple[str, int, int]] = field(default_factory=list)


# A sentence is a list of pieces: plain strings, ("E", type, text, keys) entities, ("COORD", a, b, head)
# coordinated ADEs and ("TOX", drug) drug-toxicity ADEs. A drug's keys name it; an attribute's keys name the
# drugs it belongs to, and without keys it belongs to the one drug of its sentence (a list line, or the
# sentences of one template).
def _entity(entity_type: str, text: str, *drugs: str) -> tuple:
    """An attribute of the drugs named ``drugs`` (default: the sentence's one drug)."""
    return ("E", entity_type, text, drugs)


def _drug(name: str, key: str | None = None) -> tuple:
    """A drug, named ``key`` for attributes in a sentence of several drugs."""
    return ("E", DRUG_TYPE, name, () if key is None else (key,))


# A fixed share of drugs and adverse events never appears in training notes, only in test
# notes, so the test split measures generalisation to unseen names (from context), not recall.
HELD_OUT_SHARE = 0.15


def _vocabulary(split: str) -> tuple[list[_Drug], list[str]]:
    """Drugs and ADEs for a split: training notes lack the held-out ones; test notes use all."""
    order = random.Random("synthetic-n2c2-held-out")  # the same held-out set for every seed
    held_out_drugs = set(order.sample(range(len(DRUGS)), round(HELD_OUT_SHARE * len(DRUGS))))
    held_out_ades = set(order.sample(range(len(ADES)), round(HELD_OUT_SHARE * len(ADES))))
    if split == "test":
        return list(DRUGS), list(ADES)
    return ([drug for index, drug in enumerate(DRUGS) if index not in held_out_drugs],
            [ade for index, ade in enumerate(ADES) if index not in held_out_ades])


class _Generator:
    def __init__(self, rng: random.Random, split: str = "train"):
        self.rng = rng
        self.pronoun = rng.choice(("He", "She"))
        self.drugs, self.ades = _vocabulary(split)
        self.abbreviations_lower = rng.choice(ABBREVIATION_LOWER_SHARES)
        self.list_case = {False: rng.choice(LIST_NAME_CASES), True: rng.choice(LIST_NAME_CASES)}  # by `discharge`

    def choice(self, options):
        return self.rng.choice(options)

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    # --- case -------------------------------------------------------------------
    def abbreviation(self, text: str) -> str:
        """A route or frequency in this note's habit: "PO BID" or "po bid"."""
        return _lower_abbreviations(text) if self.chance(self.abbreviations_lower) else text

    def frequency(self, options=FREQUENCIES) -> str:
        return self.abbreviation(self.choice(options))

    def name_case(self, name: str, style: str) -> str:
        """A drug name in a list's style ("lower", "capitalised", "upper") or in "prose" (mostly lower case)."""
        if style == "prose":
            style = "lower" if self.chance(PROSE_LOWER_SHARE) else "capitalised"
        return {"lower": _lower, "upper": str.upper}.get(style, _capitalise)(name)

    # --- entity-bearing sentences -------------------------------------------------
    def drug_parts(self, style: str = "prose"):
        return self.parts_of(self.choice(self.drugs), style)

    def parts_of(self, drug: _Drug, style: str = "prose"):
        """``(drug, name, strength, form, route)`` of one drug, written in ``style`` (see :meth:`name_case`)."""
        name = self.name_case(self.choice(drug.names), style)
        route = self.route_text(self.choice(drug.routes), style)
        return drug, name, self.choice(drug.strengths), self.choice(drug.forms), route

    def route_text(self, route: str, style: str = "prose") -> str:
        route = self.choice(ROUTE_VARIANTS.get(route, (route,)))
        return route if style == "upper" else self.abbreviation(route)  # an ALL CAPS list keeps "PO BID"

    def med_list_item(self, number: int, discharge: bool) -> list:
        case = self.list_case[discharge]
        if case == "mixed":
            case = self.choice(("lower", "capitalised", "upper"))
        kind = self.rng.random()
        if kind < 0.06:  # 1. Aspirin (a drug without attributes)
            return [f"{number}. ", _entity("Drug", self.drug_parts(case)[1])]
        if kind < 0.14:
            return self.shared_list_item(number, case)
        if kind < 0.20:
            return self.several_drugs_list_item(number, case)
        drug, name, strength, form, route = self.drug_parts(case)
        frequency = self.choice(FREQUENCIES) if case == "upper" else self.frequency()
        style = self.rng.random()
        item: list = [f"{number}. ", _entity("Drug", name), " "]
        if style < 0.35:  # 1. Metoprolol tartrate 25 mg tablet PO BID
            item += [_entity("Strength", strength), " "]
            if self.chance(0.7):
                item += [_entity("Form", form), " "]
            item += [_entity("Route", route), " ", _entity("Frequency", frequency)]
        elif style < 0.65 and discharge:  # MIMIC style with Sig:
            item += [_entity("Strength", strength), " ", _entity("Form", form.capitalize()), " Sig: ",
                     _entity("Dosage", self.choice(DOSAGES)), " ", _entity("Form", form.capitalize()), " ",
                     _entity("Route", route), " ", _entity("Frequency", frequency)]
            if self.chance(0.25):
                item += [" ", _entity("Duration", self.choice(DURATIONS))]
            item.append(".")
        elif style < 0.85:  # with a reason
            item += [_entity("Strength", strength), " ", _entity("Route", route), " ",
                     _entity("Frequency", self.frequency(PRN_FREQUENCIES) if self.chance(0.5) else frequency),
                     " for ", _entity("Reason", self.choice(drug.reasons))]
        else:  # take N tablets ... for N days
            item += [_entity("Strength", strength), " take ", _entity("Dosage", self.choice(DOSAGES)), " ",
                     _entity("Form", form), " ", _entity("Frequency", frequency), " ",
                     _entity("Duration", self.choice(DURATIONS))]
        return item

    def shared_list_item(self, number: int, case: str) -> list:
        """Two drugs sharing their route, frequency and reason: "4. Senna 8.6 mg and Colace 100 mg PO BID for
        constipation" (each shared attribute is linked to both drugs)."""
        drug, name, strength, _, route = self.drug_parts(case)
        reason = self.choice(drug.reasons)
        partners = [other for other in self.drugs if reason in other.reasons and other is not drug]
        other = self.choice(partners) if partners else self.choice(self.drugs)
        other_name = self.name_case(self.choice(other.names), case)
        frequency = self.choice(FREQUENCIES) if case == "upper" else self.frequency()
        item = [f"{number}. ", _drug(name, "a"), " ", _entity("Strength", strength, "a"), " and ",
                _drug(other_name, "b"), " ", _entity("Strength", self.choice(other.strengths), "b"), " "]
        if route.upper() in {variant.upper() for variant in other.routes}:
            item += [_entity("Route", route, "a", "b"), " "]
        item.append(_entity("Frequency", frequency, "a", "b"))
        if partners:
            item += [" for ", _entity("Reason", reason, "a", "b")]
        return item

    def several_drugs_list_item(self, number: int, case: str) -> list:
        """Two or three drugs on one list line: "2. aspirin 81 mg daily, lisinopril 10 mg daily"."""
        item: list = [f"{number}. "]
        for index in range(self.rng.randint(2, 3)):
            _, name, strength, _, _ = self.drug_parts(case)
            frequency = self.choice(FREQUENCIES) if case == "upper" else self.frequency()
            key = str(index)
            item += [", " if index else "", _drug(name, key), " ", _entity("Strength", strength, key), " ",
                     _entity("Frequency", frequency, key)]
        return item

    def reason_sentence(self) -> list:
        drug, name, strength, form, route = self.drug_parts()
        reason = _entity("Reason", self.choice(drug.reasons))
        pronoun = self.pronoun
        templates = (
            lambda: [f"{pronoun} was started on ", _entity("Drug", name), " ", _entity("Strength", strength), " ",
                     _entity("Route", route), " ", _entity("Frequency", self.frequency()), " for ", reason,
                     "."],
            lambda: [_entity("Drug", name), " was started for ", reason, "."],
            lambda: [self.choice(("Started", "Restarted", "Resumed", "Continued")) + " ", _entity("Drug", name), " ",
                     _entity("Strength", strength), " ", _entity("Route", route), " ",
                     _entity("Frequency", self.frequency()), " for ", reason, "."],  # telegraphic, no subject
            lambda: [f"{pronoun} was given ", _entity("Drug", name), " ", _entity("Route", route), " for ", reason,
                     " with good effect."],
            lambda: [f"{pronoun} was treated with ", _entity("Drug", name), " ", _entity("Route", route), " ",
                     _entity("Duration", self.choice(DURATIONS)), " for ", reason, "."],
            lambda: [f"{pronoun} completed a course of ", _entity("Drug", name), " for ", reason, "."],
            lambda: ["Home ", _entity("Drug", name), " was continued for ", reason, "."],
            lambda: [_entity("Drug", name), " was increased to ", _entity("Strength", strength), " ",
                     _entity("Frequency", self.frequency()), " for better control of ", reason, "."],
            lambda: [f"{pronoun} will continue ", _entity("Drug", name), " ", _entity("Strength", strength), " ",
                     _entity("Frequency", self.frequency()), " ", _entity("Duration", self.choice(DURATIONS)),
                     " to treat ", reason, "."],
            lambda: ["For ", reason, f", {pronoun.lower()} received ", _entity("Drug", name), " ",
                     _entity("Strength", strength), " ", _entity("Route", route), "."],
            # The reason told in the sentence before its drug.
            lambda: [f"{pronoun} was noted to have ", reason, f". {pronoun} was started on ", _entity("Drug", name),
                     " ", _entity("Strength", strength), " ", _entity("Route", route), " ",
                     _entity("Frequency", self.frequency()), "."],
            lambda: ["Course was notable for ", reason, ". This was treated with ", _entity("Drug", name), " ",
                     _entity("Duration", self.choice(DURATIONS)), "."],
            # A drug without attributes.
            lambda: [f"{pronoun} was continued on {'his' if pronoun == 'He' else 'her'} home ", _entity("Drug", name),
                     "."],
        )
        return _sentence_start(self.choice(templates)())

    def ade_sentence(self) -> list:
        _, name, strength, _, route = self.drug_parts()
        _, other, other_strength, _, _ = self.drug_parts()
        ade = _entity("ADE", self.choice(self.ades))
        drug = _entity("Drug", name)
        pronoun = self.pronoun
        templates = (
            lambda: [f"{pronoun} developed ", ade, " after ", drug, " was started, so it was discontinued."],
            lambda: [f"{pronoun} developed ", ade, " after receiving ", drug, "."],
            lambda: [drug, " was stopped because of ", ade, "."],
            lambda: [self.choice(("Stopped", "Held", "Discontinued")) + " ", drug, " due to ", ade, "."],
            lambda: [_entity("ADE", ade[2][0].upper() + ade[2][1:]), " was thought to be secondary to ", drug, "."],
            lambda: ["Hospital course was complicated by ", ade, " attributed to ", drug, "."],
            lambda: [f"{pronoun} was switched from ", _drug(name, "old"), " to ", _drug(other, "new"), " ",
                     _entity("Strength", other_strength, "new"), " ", _entity("Frequency", self.frequency(), "new"),
                     " because of ", _entity("ADE", ade[2], "old"), "."],
            lambda: ["Given ", ade, " on ", drug, ", the dose was reduced to ", _entity("Strength", strength), " ",
                     _entity("Route", route), " ", _entity("Frequency", self.frequency()), "."],
            lambda: [f"{pronoun} developed ", ("COORD", *self.choice(COORDINATED_ADES)), " after ", drug, "."],
            lambda: [f"{pronoun} presented with ", ("TOX", self.choice(TOXICITY_DRUGS)), " and it was held."],
            # The adverse event told in another sentence than its drug.
            lambda: [f"{pronoun} developed ", ade, ". This was attributed to ", drug, ", which was stopped."],
            lambda: [f"{pronoun} was started on ", drug, f". {pronoun} later developed ", ade,
                     " and it was discontinued."],
        )
        return _sentence_start(self.choice(templates)())

    # --- hard mode (generate_notes(..., hard=True)): the nearest drug is often the wrong one ----------------------
    # Each template names, in its comment, what the nearest-drug rule gets wrong there (and every template holds
    # at least two drugs, so linking every candidate pair is wrong somewhere in each). What decides the right drug
    # is in the words: "of", "respectively", "both", "previously on", "which had replaced", "held", "stopped",
    # "the increase", and the order of the sentences.
    def frequency_in(self, style: str) -> str:
        return self.choice(FREQUENCIES) if style == "upper" else self.frequency()

    def two_drugs(self, style: str = "prose"):
        """Two different drugs that share an indication (a class switch, a bowel regimen, two antihypertensives):
        ``(first parts, second parts, shared reason, shared route or None)`` (parts: see :meth:`parts_of`)."""
        while True:
            first = self.drug_parts(style)
            reason = self.choice(first[0].reasons)
            partners = [drug for drug in self.drugs if reason in drug.reasons and drug is not first[0]]
            if partners:
                break
        second = self.parts_of(self.choice(partners), style)
        common = [route for route in first[0].routes if route in second[0].routes]
        return first, second, reason, self.route_text(self.choice(common), style) if common else None

    def different_drugs(self, style: str = "prose"):
        """Two different drugs, whatever their indications: ``(first parts, second parts)``."""
        first = self.drug_parts(style)
        while True:
            second = self.drug_parts(style)
            if second[0] is not first[0]:
                return first, second

    def hard_narrative(self) -> list:
        """One to three sentences about two drugs, where an attribute's own drug is often not the nearest one."""
        templates = {name: getattr(self, f"_narrative_{name}") for name, _ in HARD_NARRATIVE_MIX}
        name = self.rng.choices([name for name, _ in HARD_NARRATIVE_MIX],
                                [weight for _, weight in HARD_NARRATIVE_MIX])[0]
        return _sentence_start(templates[name]())

    def _narrative_two_started(self) -> list:
        # "Started metoprolol 25 mg PO BID and lisinopril 10 mg daily for hypertension": the reason of both drugs
        # (the rule gives it to the second only).
        (_, a, a_strength, _, a_route), (_, b, b_strength, _, _), reason, _ = self.two_drugs()
        return [self.choice(("Started ", "Restarted ", "Continued ")), _drug(a, "a"), " ",
                _entity("Strength", a_strength, "a"), " ", _entity("Route", a_route, "a"), " ",
                _entity("Frequency", self.frequency(), "a"), " and ", _drug(b, "b"), " ",
                _entity("Strength", b_strength, "b"), " ", _entity("Frequency", self.frequency(), "b"), " for ",
                _entity("Reason", reason, "a", "b"), "."]

    def _narrative_each_reason(self) -> list:
        # "Started metoprolol 25 mg daily for rate control and lisinopril 10 mg daily for hypertension": each
        # attribute follows its own drug (the rule is right; every candidate is not).
        (a_drug, a, a_strength, _, _), (b_drug, b, b_strength, _, _) = self.different_drugs()
        return [self.choice(("Started ", "Restarted ")), _drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " ",
                _entity("Frequency", self.frequency(), "a"), " for ",
                _entity("Reason", self.choice(a_drug.reasons), "a"),
                " and ", _drug(b, "b"), " ", _entity("Strength", b_strength, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), " for ",
                _entity("Reason", self.choice(b_drug.reasons), "b"),
                "."]

    def _narrative_three_continued(self) -> list:
        # "Home aspirin 81 mg daily, metoprolol 25 mg BID and atorvastatin 40 mg QHS were continued": three drugs,
        # each with its own attributes after it (the rule is right; every candidate is not).
        drugs: list = []
        while len(drugs) < 3:
            parts = self.drug_parts()
            if all(parts[0] is not other[0] for other in drugs):
                drugs.append(parts)
        opening = self.choice(("Home ", "Her home " if self.pronoun == "She" else "His home ", ""))
        sentence: list = [opening] if opening else []  # else the first drug starts the sentence (capitalised)
        for index, (_, name, strength, _, _) in enumerate(drugs):
            key = str(index)
            if index:
                sentence.append((", ", " and ")[index - 1])
            sentence += [_drug(name, key), " ", _entity("Strength", strength, key), " ",
                         _entity("Frequency", self.frequency(), key)]
        return sentence + [self.choice((" were continued.", " were held on admission and restarted."))]

    def _narrative_dose_of(self) -> list:
        # "Continued aspirin 81 mg daily and added 25 mg of metoprolol PO BID": the strength before its drug
        # (the rule gives it to aspirin).
        (_, a, a_strength, _, _), (_, b, b_strength, _, b_route) = self.different_drugs()
        return ["Continued ", _drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " ",
                _entity("Frequency", self.frequency(), "a"), " and ", self.choice(("added ", "started ")),
                _entity("Strength", b_strength, "b"), " of ", _drug(b, "b"), " ", _entity("Route", b_route, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), "."]

    def _narrative_reason_first(self) -> list:
        # "Aspirin 81 mg daily was continued; for hypertension, lisinopril 10 mg daily was started": the reason
        # before its drug, after another one (the rule gives it to aspirin).
        (_, a, a_strength, _, _), (b_drug, b, b_strength, _, _) = self.different_drugs()
        return [_drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " ",
                _entity("Frequency", self.frequency(), "a"),
                " was continued; for ", _entity("Reason", self.choice(b_drug.reasons), "b"), ", ", _drug(b, "b"), " ",
                _entity("Strength", b_strength, "b"), " ", _entity("Frequency", self.frequency(), "b"), " was started."]

    def _narrative_attributes_first(self) -> list:
        # "Aspirin 81 mg was continued, and 12.5 mg PO BID metoprolol was added": every attribute before its drug
        # (the rule gives all three to aspirin).
        (_, a, a_strength, _, _), (_, b, b_strength, _, b_route) = self.different_drugs()
        return [_drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " was continued, and ",
                _entity("Strength", b_strength, "b"), " ", _entity("Route", b_route, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), " ", _drug(b, "b"), " was added."]

    def _narrative_replaced(self) -> list:
        # "Metoprolol, which had replaced atenolol, was continued at 25 mg PO BID": a second drug between the
        # attributes and their drug (the rule gives them to atenolol); the replaced drug's adverse event, if told,
        # follows it.
        (_, b, b_strength, _, b_route), (_, a, _, _, _), _, _ = self.two_drugs()
        sentence = [_drug(b, "b"), ", which had replaced ", _drug(a, "a")]
        if self.chance(0.4):
            sentence += [" because of ", _entity("ADE", self.choice(self.ades), "a")]
        sentence.append(self.choice((", was continued at ", ", ")))
        return sentence + [_entity("Strength", b_strength, "b"), " ", _entity("Route", b_route, "b"), " ",
                           _entity("Frequency", self.frequency(), "b"), "."]

    def _narrative_previously_on(self) -> list:
        # "Started lisinopril (previously on losartan) 10 mg daily for hypertension": the old drug in parentheses
        # between the new one and its attributes (the rule gives them to losartan).
        (b_drug, b, b_strength, _, _), (_, a, _, _, _), reason, _ = self.two_drugs()
        return [self.choice(("Started ", "Continued ", "Discharged on ")), _drug(b, "b"), " (previously on ",
                _drug(a, "a"), ") ", _entity("Strength", b_strength, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), " for ", _entity("Reason", reason, "b"), "."]

    def _narrative_respectively(self) -> list:
        # "Metoprolol and lisinopril were continued at 25 mg and 10 mg, respectively, both PO daily": crossing
        # strengths, then a route and a frequency of both (the rule gives all four to lisinopril).
        (_, a, a_strength, _, _), (_, b, b_strength, _, _), _, route = self.two_drugs()
        sentence = [_drug(a, "a"), " and ", _drug(b, "b")]
        sentence += self.choice((
            [" were continued at ", _entity("Strength", a_strength, "a"), " and ", _entity("Strength", b_strength, "b"),
             ", respectively, both "],
            [", ", _entity("Strength", a_strength, "a"), " and ", _entity("Strength", b_strength, "b"),
             " respectively, were continued "],
        ))
        if route:
            sentence += [_entity("Route", route, "a", "b"), " "]
        return sentence + [_entity("Frequency", self.frequency(), "a", "b"), "."]

    def _narrative_shared(self) -> list:
        # "Senna and Colace PO BID were given for constipation": one route, frequency and reason for both drugs
        # (the rule gives them to the second).
        (_, a, _, _, _), (_, b, _, _, _), reason, route = self.two_drugs()
        sentence = [self.choice(("Started ", "Continued ", "Gave ")), _drug(a, "a"), " and ", _drug(b, "b"), " "]
        if route:
            sentence += [_entity("Route", route, "a", "b"), " "]
        return sentence + [_entity("Frequency", self.frequency(), "a", "b"), " for ",
                           _entity("Reason", reason, "a", "b"), "."]

    def _narrative_the_increase(self) -> list:
        # "Metoprolol was increased to 50 mg BID; aspirin was continued unchanged. The increase was for rate
        # control.": the reason in the next sentence, for the drug that was increased (the rule takes aspirin,
        # the nearest before it).
        (a_drug, a, a_strength, _, _), (_, b, _, _, _) = self.different_drugs()
        return [_drug(a, "a"), " was increased to ", _entity("Strength", a_strength, "a"), " ",
                _entity("Frequency", self.frequency(), "a"), "; ", _drug(b, "b"), " was continued unchanged. ",
                self.choice(("The increase was for ", "The dose change was for ")),
                _entity("Reason", self.choice(a_drug.reasons), "a"), "."]

    def _narrative_this_was_for(self) -> list:
        # "Metoprolol was increased. This was for rate control. Aspirin was continued.": the reason in a sentence of
        # its own between two drugs (the rule is right, the candidates hold both drugs).
        (a_drug, a, a_strength, _, _), (_, b, _, _, _) = self.different_drugs()
        return [_drug(a, "a"), " was ", self.choice(("increased to ", "restarted at ")),
                _entity("Strength", a_strength, "a"), ". This was for ",
                _entity("Reason", self.choice(a_drug.reasons), "a"), ". ", _drug(_capitalise(b), "b"),
                " was continued."]

    def _narrative_stopped_then_developed(self) -> list:
        # "Lisinopril was stopped and amlodipine 5 mg daily was started. She had developed angioedema.": the
        # adverse event of the stopped drug, told after the new one (the rule takes amlodipine).
        (_, a, _, _, _), (_, b, b_strength, _, _) = self.different_drugs()
        return [_drug(a, "a"), " was stopped and ", _drug(b, "b"), " ", _entity("Strength", b_strength, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), f" was started. {self.pronoun} had developed ",
                _entity("ADE", self.choice(self.ades), "a"), "."]

    def _narrative_stopped_instead(self) -> list:
        # "Lisinopril was stopped. She had developed angioedema. Losartan 25 mg daily was started instead.": the
        # adverse event between the two drugs' sentences (the rule is right, the candidates hold both).
        (_, a, _, _, _), (_, b, b_strength, _, _), _, _ = self.two_drugs()
        return [_drug(a, "a"), f" was stopped. {self.pronoun} had developed ",
                _entity("ADE", self.choice(self.ades), "a"),
                ". ", _drug(_capitalise(b), "b"), " ", _entity("Strength", b_strength, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), " was started instead."]

    def _narrative_held(self) -> list:
        # "Held warfarin for supratherapeutic INR; started enoxaparin 80 mg SC BID for DVT": each attribute
        # describes its own drug, the held one's adverse event included.
        (_, a, _, _, _), (b_drug, b, b_strength, _, b_route) = self.different_drugs()
        return [self.choice(("Held ", "Discontinued ")), _drug(a, "a"), " for ",
                _entity("ADE", self.choice(self.ades), "a"),
                "; started ", _drug(b, "b"), " ", _entity("Strength", b_strength, "b"), " ",
                _entity("Route", b_route, "b"), " ", _entity("Frequency", self.frequency(), "b"), " for ",
                _entity("Reason", self.choice(b_drug.reasons), "b"), "."]

    def _narrative_switched_because(self) -> list:
        # "Discontinued lisinopril and started losartan 25 mg daily because of cough": the adverse event of the
        # discontinued drug, told after the new one (the rule takes losartan).
        (_, a, _, _, _), (_, b, b_strength, _, _), _, _ = self.two_drugs()
        return [self.choice(("Discontinued ", "Stopped ", "Held ")), _drug(a, "a"), " and started ", _drug(b, "b"), " ",
                _entity("Strength", b_strength, "b"), " ", _entity("Frequency", self.frequency(), "b"),
                self.choice((" because of ", " due to ")), _entity("ADE", self.choice(self.ades), "a"), "."]

    def _narrative_held_with_dose(self) -> list:
        # "Held home lisinopril 10 mg daily given hypotension, and continued aspirin 81 mg daily": a held drug
        # keeps its own attributes (the rule is right).
        (_, a, a_strength, _, _), (_, b, b_strength, _, _) = self.different_drugs()
        return ["Held home ", _drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " ",
                _entity("Frequency", self.frequency(), "a"), " given ", _entity("ADE", self.choice(self.ades), "a"),
                ", and continued ", _drug(b, "b"), " ", _entity("Strength", b_strength, "b"), " ",
                _entity("Frequency", self.frequency(), "b"), "."]

    def _narrative_noted_then_started(self) -> list:
        # "Aspirin 81 mg daily was continued. She was noted to have hypertension. Lisinopril 10 mg was started.":
        # the reason in the sentence before its drug (the rule takes aspirin, the nearest before it).
        (_, a, a_strength, _, _), (b_drug, b, b_strength, _, b_route) = self.different_drugs()
        return [_drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " ",
                _entity("Frequency", self.frequency(), "a"),
                f" was continued. {self.pronoun} was noted to have ",
                _entity("Reason", self.choice(b_drug.reasons), "b"), ". ", _drug(_capitalise(b), "b"), " ",
                _entity("Strength", b_strength, "b"), " ", _entity("Route", b_route, "b"),
                " was started."]

    def hard_list_item(self, number: int, discharge: bool) -> list:
        """A medication list line about two drugs, or (:data:`HARD_LIST_SHARE` of the time not) a usual one."""
        if not self.chance(HARD_LIST_SHARE):
            return self.med_list_item(number, discharge)
        case = self.list_case[discharge]
        if case == "mixed":
            case = self.choice(("lower", "capitalised", "upper"))
        kind = self.rng.choices([name for name, _ in HARD_LIST_MIX], [weight for _, weight in HARD_LIST_MIX])[0]
        if kind == "shared_strengths":
            return self.shared_list_item(number, case)
        if kind == "several":
            return self.several_drugs_list_item(number, case)
        (a_drug, a, a_strength, _, a_route), (_, b, b_strength, _, _), reason, route = self.two_drugs(case)
        item: list = [f"{number}. "]
        if kind == "previously_on":  # "3. Lisinopril (previously on losartan) 10 mg PO daily"
            return item + [_drug(a, "a"), " (previously on ", _drug(b, "b"), ") ", _entity("Strength", a_strength, "a"),
                           " ", _entity("Route", a_route, "a"), " ", _entity("Frequency", self.frequency_in(case), "a")]
        if kind == "shared":  # "5. Senna and Colace PO BID for constipation"
            item += [_drug(a, "a"), " and ", _drug(b, "b"), " "]
            if route:
                item += [_entity("Route", route, "a", "b"), " "]
            return item + [_entity("Frequency", self.frequency_in(case), "a", "b"), " for ",
                           _entity("Reason", reason, "a", "b")]
        if kind == "respectively":  # "4. Metoprolol and lisinopril 25 mg and 10 mg, respectively, PO daily"
            item += [_drug(a, "a"), " and ", _drug(b, "b"), " ", _entity("Strength", a_strength, "a"), " and ",
                     _entity("Strength", b_strength, "b"), ", respectively, "]
            if route:
                item += [_entity("Route", route, "a", "b"), " "]
            return item + [_entity("Frequency", self.frequency_in(case), "a", "b")]
        # "6. Lisinopril 10 mg PO daily (held for hyperkalemia; replaced by losartan)": the held drug's attributes
        # and adverse event are its own.
        return item + [_drug(a, "a"), " ", _entity("Strength", a_strength, "a"), " ", _entity("Route", a_route, "a"),
                       " ", _entity("Frequency", self.frequency_in(case), "a"), " (held for ",
                       _entity("ADE", self.choice(self.ades), "a"), "; replaced by ", _drug(b, "b"), ")"]

    # --- all-O sentences ----------------------------------------------------------
    def exam_line(self) -> str:
        return self.choice((
            f"Vitals: T {self.rng.randint(970, 1012) / 10} BP {self.rng.randint(95, 170)}/{self.rng.randint(50, 95)} "
            f"HR {self.rng.randint(52, 118)} RR {self.rng.randint(12, 24)} O2 sat {self.rng.randint(89, 100)}% "
            f"on {self.choice(('RA', '2L NC', 'room air', '3L NC'))}",
            "General: alert and oriented x3, in no acute distress.",
            "General: elderly, comfortable, pleasant.",
            "HEENT: PERRL, EOMI, mucous membranes moist, oropharynx clear.",
            "Neck: supple, JVP not elevated, no lymphadenopathy.",
            "Lungs: clear to auscultation bilaterally, no wheezes, rales or rhonchi.",
            f"Lungs: {self.choice(('bibasilar crackles', 'decreased breath sounds at the bases', 'scattered wheezes'))}.",
            "CV: regular rate and rhythm, normal S1 and S2, no murmurs, rubs or gallops.",
            f"CV: irregularly irregular, {self.choice(('II/VI', 'III/VI'))} systolic murmur at the apex.",
            "Abdomen: soft, non-tender, non-distended, normoactive bowel sounds.",
            f"Extremities: {self.choice(('no edema', 'trace edema', '1+ pitting edema', 'warm and well perfused'))}.",
            "Neuro: CN II-XII intact, strength 5/5 throughout, sensation grossly intact.",
            "Skin: no rashes or lesions.",
        ))

    def lab_line(self) -> str:
        date = f"21{self.rng.randint(10, 99)}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
        time = f"{self.rng.randint(0, 11):02d}:{self.rng.randint(0, 59):02d}{self.choice(('AM', 'PM'))}"
        return self.choice((
            f"{date} {time} BLOOD WBC-{self.rng.randint(30, 180) / 10} RBC-{self.rng.randint(300, 520) / 100} "
            f"Hgb-{self.rng.randint(80, 160) / 10} Hct-{self.rng.randint(250, 480) / 10} Plt Ct-{self.rng.randint(90, 420)}",
            f"{date} {time} BLOOD Glucose-{self.rng.randint(70, 320)} UreaN-{self.rng.randint(8, 60)} "
            f"Creat-{self.rng.randint(6, 35) / 10} Na-{self.rng.randint(128, 146)} K-{self.rng.randint(31, 56) / 10} "
            f"Cl-{self.rng.randint(95, 110)} HCO3-{self.rng.randint(18, 30)}",
            f"{date} {time} BLOOD ALT-{self.rng.randint(10, 90)} AST-{self.rng.randint(10, 90)} "
            f"AlkPhos-{self.rng.randint(40, 160)} TotBili-{self.rng.randint(2, 25) / 10}",
            f"{date} {time} BLOOD PT-{self.rng.randint(100, 300) / 10} INR(PT)-{self.rng.randint(9, 35) / 10}",
            f"CXR: {self.choice(('no acute cardiopulmonary process', 'mild pulmonary edema', 'left lower lobe opacity', 'small bilateral pleural effusions'))}.",
            f"ECG: {self.choice(('sinus rhythm', 'atrial fibrillation', 'sinus tachycardia'))} at {self.rng.randint(55, 120)}, "
            f"{self.choice(('no acute ST changes', 'unchanged from prior', 'left axis deviation'))}.",
            f"Echo: EF {self.rng.randint(20, 65)}%, {self.choice(('mild MR', 'no significant valvular disease', 'moderate TR'))}.",
        ))

    def history_sentence(self) -> str:
        pronoun = self.pronoun
        return self.choice((
            f"{self.rng.randint(34, 92)} year old {self.choice(('man', 'woman', 'M', 'F'))} with a history of "
            f"{self.choice(CONDITIONS)} and {self.choice(CONDITIONS)} who presents with {self.choice(COMPLAINTS)}.",
            f"{pronoun} reports {self.rng.randint(2, 10)} days of {self.choice(COMPLAINTS)}.",
            f"{pronoun} denies fevers, chills or night sweats.",
            "In the ED, vitals were notable for mild tachycardia.",
            "Review of systems was otherwise negative.",
            f"{pronoun} was in {self.choice(('her', 'his'))} usual state of health until {self.choice(('yesterday', 'last week', 'this morning'))}.",
            f"Labs were notable for a creatinine of {self.rng.randint(8, 30) / 10}.",
        ))

    def course_sentence(self) -> str:
        pronoun = self.pronoun
        return self.choice((
            f"{pronoun} remained hemodynamically stable.",
            f"{pronoun} was transferred to the floor in stable condition.",
            f"Physical therapy evaluated {'him' if pronoun == 'He' else 'her'} and recommended home with services.",
            f"{self.choice(('Cardiology', 'Nephrology', 'Infectious disease', 'Gastroenterology'))} was consulted.",
            "Blood cultures remained negative.",
            f"Symptoms improved over the next {self.rng.randint(2, 5)} days.",
            "Electrolytes were repleted as needed.",
            f"{pronoun} tolerated a regular diet.",
        ))

    def instruction_sentence(self) -> str:
        return self.choice((
            "Please call your doctor or return to the emergency department if you develop chest pain or shortness of breath.",
            "Please keep all of your follow-up appointments.",
            "Weigh yourself every morning and call your doctor if your weight goes up more than 3 lbs.",
            "Please take all of your medications as prescribed.",
            "Do not drive until you are seen in clinic.",
            "You were admitted to the hospital for evaluation.",
            "Your blood counts were stable during this admission.",
            f"Follow up with Dr. {self.choice(NAMES)} in {self.rng.randint(1, 4)} weeks.",
            f"Follow up with your primary care physician, Dr. {self.choice(NAMES)}, within one week.",
            "It was a pleasure taking care of you.",
        ))

    def social_line(self) -> str:
        return self.choice((
            f"Lives with {self.choice(('his wife', 'her husband', 'daughter', 'a roommate', 'family'))} in {self.choice(('an apartment', 'a house', 'assisted living'))}.",
            "Denies tobacco, alcohol or illicit drug use.",
            f"Former smoker, quit {self.rng.randint(2, 30)} years ago.",
            "Retired, independent in ADLs.",
        ))


def _link(mentions: list[tuple[int, str, tuple[str, ...]]]) -> list[tuple[str, int, int]]:
    """The relations of one sentence's ``(entity index, type, keys)`` mentions (see :func:`_entity`)."""
    drugs = [(index, keys) for index, entity_type, keys in mentions if entity_type == DRUG_TYPE]
    drug_of = {key: index for index, keys in drugs for key in keys}
    relations = []
    for index, entity_type, keys in mentions:
        if entity_type == DRUG_TYPE:
            continue
        if not keys and len(drugs) != 1:
            raise ValueError(f"a {entity_type} in a sentence of {len(drugs)} drugs must name its drug")
        relations += [(relation_type(entity_type), index, drug_of[key] if keys else drugs[0][0])
                      for key in keys or (None,)]
    return relations


def _render(sections, rng: random.Random, sentence_safe_wraps: bool = False
            ) -> tuple[str, list[tuple[str, tuple[tuple[int, int], ...]]], list[tuple[str, int, int]]]:
    """Lay out ``(title, sentences, layout)`` sections; wrap paragraphs; return text, entities and relations.

    With ``sentence_safe_wraps`` a paragraph wraps only before a lower-case letter (and not after ``:;!?``), where
    a line break never ends a sentence for ``tagging.split_sentences``: no sentence is cut by a wrap, so every
    relation stays within the candidates' reach. Otherwise (the default notes) a wrap may fall before "PO" or "25 mg",
    where the sentence splitter sees a new sentence, as it would in a real note."""
    text = ""
    entities: list[tuple[str, list[tuple[int, int]]]] = []
    mentions: list[tuple[int, str, tuple[str, ...]]] = []  # the current sentence's
    relations: list[tuple[str, int, int]] = []

    def add(entity_type: str, spans: list[tuple[int, int]], keys: tuple[str, ...] = ()) -> None:
        mentions.append((len(entities), entity_type, keys))
        entities.append((entity_type, spans))

    def append(piece) -> None:
        nonlocal text
        if isinstance(piece, str):
            text += piece
        elif piece[0] == "E":
            start = len(text)
            text += piece[2]
            add(piece[1], [(start, len(text))], piece[3])
        elif piece[0] == "COORD":  # "liver and kidney injury": liver...injury + kidney injury
            first, second, head = piece[1:]
            first_start = len(text)
            text += f"{first} and "
            second_start = len(text)
            text += f"{second} {head}"
            add("ADE", [(first_start, first_start + len(first)), (len(text) - len(head), len(text))])
            add("ADE", [(second_start, len(text))])
        elif piece[0] == "TOX":  # "digoxin toxicity": a Drug inside an ADE, which it caused
            start = len(text)
            text += f"{piece[1]} toxicity"
            add("ADE", [(start, len(text))], ("toxic",))
            add(DRUG_TYPE, [(start, start + len(piece[1]))], ("toxic",))

    text = SYNTHETIC_HEADER + "\n"
    for title, sentences, layout in sections:
        if title:
            text += f"\n{title}:\n"
        paragraph_start = len(text)
        for index, sentence in enumerate(sentences):
            if layout == "paragraph" and index:
                text += " "
            for piece in sentence if isinstance(sentence, list) else [sentence]:
                append(piece)
            relations += _link(mentions)
            mentions.clear()
            if layout == "lines":
                text += "\n"
        if layout == "paragraph":
            # Hard-wrap the paragraph by turning spaces into newlines (offsets do not move):
            # entities crossing a wrap become discontinuous fragments, as in n2c2.
            width = rng.randint(70, 100)
            chars = list(text)
            line_start = paragraph_start
            last_space = None
            for position in range(paragraph_start, len(chars)):
                if chars[position] == " " and (not sentence_safe_wraps or (
                        chars[position + 1:position + 2] != [] and chars[position + 1].islower()
                        and chars[position - 1] not in ":;!?")):
                    last_space = position
                if position - line_start >= width and last_space is not None and last_space > line_start:
                    chars[last_space] = "\n"
                    line_start = last_space + 1
                    last_space = None
            text = "".join(chars) + "\n"
    fragments = []
    for entity_type, spans in entities:
        pieces = tuple(piece for start, end in spans for piece in split_at_line_breaks(text, start, end))
        fragments.append((entity_type, pieces))
    order = sorted(range(len(fragments)), key=lambda index: (fragments[index][1][0], -fragments[index][1][-1][1]))
    position = {index: rank for rank, index in enumerate(order)}
    relations = sorted(((name, position[attribute], position[drug]) for name, attribute, drug in relations),
                       key=lambda relation: (relation[2], relation[1]))  # by drug, then attribute
    return text, [fragments[index] for index in order], relations


def generate_note(rng: random.Random, doc_id: str, split: str = "train", hard: bool = False) -> SyntheticNote:
    """One synthetic discharge summary (about three quarters of its sentences all-O); ``hard``: see
    :func:`generate_notes`."""
    generator = _Generator(rng, split)
    hpi = [generator.history_sentence() for _ in range(rng.randint(2, 4))]
    if rng.random() < 0.5:
        hpi.insert(rng.randint(1, len(hpi)), generator.reason_sentence())
    if hard:  # mostly sentences about two drugs, a few of the usual ones
        course = [generator.hard_narrative() for _ in range(rng.randint(HARD_NARRATIVES[0], HARD_NARRATIVES[1]))]
        course += [generator.reason_sentence() for _ in range(rng.randint(0, 2))]
    else:
        course = [generator.reason_sentence() for _ in range(rng.randint(2, 5))]
    # 1.2 ADE sentences a note on average (ADEs about 2% of the entities): enough for a small model to tell
    # an adverse event from a lower-case drug name by context.
    course += [generator.ade_sentence() for _ in range(rng.choice((0, 1, 1, 2, 2)))]
    course += [generator.course_sentence() for _ in range(rng.randint(1, 3))]
    rng.shuffle(course)
    list_item = generator.hard_list_item if hard else generator.med_list_item
    admission_meds = [list_item(number, False) for number in range(1, rng.randint(3, 7))]
    discharge_meds = [list_item(number, True) for number in range(1, rng.randint(4, 11))]
    # Entity sentences counted as written; fill with all-O lines up to a share drawn near 75%.
    entity_sentences = len(admission_meds) + len(discharge_meds) + sum(
        1 for sentence in hpi + course if isinstance(sentence, list))
    plain_target = rng.uniform(0.68, 0.78)
    titles = 14
    plain_now = 1 + titles + sum(1 for sentence in hpi + course if isinstance(sentence, str)) + 4
    plain_needed = max(0, round(plain_target * entity_sentences / (1 - plain_target)) - plain_now)
    exam_count = max(3, plain_needed * 2 // 5)
    lab_count = max(2, plain_needed * 2 // 5)
    instruction_count = max(2, plain_needed - exam_count - lab_count)
    admission = f"21{rng.randint(10, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 20):02d}"
    sections = [
        (None, [f"Admission Date: {admission}   Discharge Date: (day {rng.randint(2, 9)})",
                f"Service: {rng.choice(('MEDICINE', 'CARDIOLOGY', 'SURGERY', 'NEUROLOGY'))}"], "lines"),
        ("Allergies", [rng.choice(("No Known Allergies / Adverse Drug Reactions", "Patient recorded as having No "
                                   "Known Allergies to Drugs", "Penicillins", "Sulfa (Sulfonamide Antibiotics)"))],
         "lines"),
        ("Chief Complaint", [rng.choice(COMPLAINTS)], "lines"),
        ("History of Present Illness", hpi, "paragraph"),
        ("Past Medical History", [f"- {condition}" for condition in rng.sample(CONDITIONS, rng.randint(2, 5))],
         "lines"),
        ("Social History", [generator.social_line() for _ in range(rng.randint(1, 2))], "lines"),
        ("Physical Exam", [generator.exam_line() for _ in range(exam_count)], "lines"),
        ("Pertinent Results", [generator.lab_line() for _ in range(lab_count)], "lines"),
        ("Brief Hospital Course", course, "paragraph"),
        ("Medications on Admission", admission_meds, "lines"),
        ("Discharge Medications", discharge_meds, "lines"),
        ("Discharge Disposition", [rng.choice(("Home", "Home With Service", "Extended Care"))], "lines"),
        ("Discharge Condition", [rng.choice(("Stable.", "Mental Status: Clear and coherent."))], "lines"),
        ("Discharge Instructions", [generator.instruction_sentence() for _ in range(instruction_count)], "lines"),
    ]
    if rng.random() < UPPER_TITLES_SHARE:
        sections = [(title and title.upper(), sentences, layout) for title, sentences, layout in sections]
    text, entities, relations = _render(sections, rng, sentence_safe_wraps=hard)
    return SyntheticNote(doc_id, text, entities, relations)


def generate_notes(count: int, seed: int = 42, split: str = "train", hard: bool = False) -> list[SyntheticNote]:
    """``count`` notes named ``synthetic-{split}-NNNN`` (``synthetic-hard-{split}-NNNN`` with ``hard``); the same
    seed, split and mode give the same notes, in any process.

    ``split="test"`` draws from the whole vocabulary, any other split leaves out the held-out
    drugs and adverse events (see :data:`HELD_OUT_SHARE`). ``hard=True`` writes the hard mode (see the module
    docstring): the same kind of note, but its hospital course is mostly sentences about two drugs and half its
    medication list lines hold two drugs, where an attribute's nearest drug is often not its own. Its notes are
    drawn from their own seed: they do not share a course or list with the default notes of the same seed.
    """
    if hard:
        rng = random.Random(f"synthetic-n2c2-hard-{seed}-{split}")
        return [generate_note(rng, f"synthetic-hard-{split}-{index:04d}", split, hard=True)
                for index in range(1, count + 1)]
    rng = random.Random(f"synthetic-n2c2-{seed}-{split}")  # str seeds are stable across processes
    return [generate_note(rng, f"synthetic-{split}-{index:04d}", split) for index in range(1, count + 1)]


def write_notes(notes: list[SyntheticNote], folder, overwrite: bool = False) -> Path:
    """Write ``.txt``/``.ann`` pairs into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for note in notes:
        txt_path = folder / f"{note.doc_id}.txt"
        if txt_path.exists() and not overwrite:
            raise FileExistsError(f"{txt_path} exists (pass --overwrite to replace it)")
        with open(txt_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(note.text)
        write_brat_entities(folder / f"{note.doc_id}.ann", note.entities, note.text, relations=note.relations,
                            overwrite=overwrite)
    return folder


def write_synthetic_corpus(folder, num_train: int, num_test: int, seed: int = 42, overwrite: bool = False,
                           hard: bool = False) -> dict:
    """Write ``folder/train`` and ``folder/test`` (skipped when ``num_test`` is 0); returns the folders. ``hard``:
    the hard mode's notes (see :func:`generate_notes`)."""
    folder = Path(folder)
    for split in ("train", "test"):
        existing = folder / split
        if existing.is_dir() and any(existing.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{existing} exists and is not empty (pass --overwrite to replace it)")
            foreign = Manifest(existing).foreign()
            if foreign:  # only what an earlier call wrote goes (its manifest says what)
                raise FileExistsError(f"{existing} holds {len(foreign)} files this toolkit did not write (e.g. "
                                      f"{foreign[0]}): not replacing it")
            Manifest(existing).remove_owned()
    notes = {split: generate_notes(count, seed, split, hard=hard) for split, count in (("train", num_train),
                                                                                     ("test", num_test))}
    folders = {}
    for split in ("train", "test")[: 1 + bool(num_test)]:
        Manifest(folder / split).claim(name for note in notes[split] for name in (f"{note.doc_id}.txt",
                                                                                  f"{note.doc_id}.ann"))
        folders[split] = write_notes(notes[split], folder / split, overwrite)
    return folders
