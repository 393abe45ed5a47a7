"""Deterministic generator of the shipped default catalog and personas.

The default catalog (``envs/data/catalog.csv``) and personas (``envs/data/personas.csv``) are
*generated*, not hand-written, so that their statistics (topic sizes, click-bait share, popularity
skew) are controlled and so that anyone can regenerate them byte for byte::

    python -m lmrecsim.envs.catalog_build [--out PATH] [--personas-out PATH] [--seed N]

Titles and descriptions are assembled from topic-specific vocabularies. Descriptions name the
topic in plain words ("hard science fiction", "space documentary", "true crime") so that a
sentence-embedding model places items of one topic close together; persona texts reuse the same
words so that a persona's taste vector lands near the items it likes.

Everything is driven by one ``numpy.random.Generator`` per output, derived from a fixed seed, and
written with explicit float formatting and ``\\n`` line endings, so regenerating gives identical
bytes on every platform.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20240611
DEFAULT_N_ITEMS = 1300
CLICKBAIT_SHARE = 0.08
SECONDARY_TOPIC_SHARE = 0.20
ZIPF_EXPONENT = 1.0
MIN_ITEMS_PER_TOPIC = 45

DATA_DIR = Path(__file__).resolve().parent / "data"
CATALOG_COLUMNS = ("item_id", "title", "description", "topics", "quality", "appeal", "popularity")
PERSONA_COLUMNS = ("name", "text", "liked", "avoided", "onboarding")


@dataclass(frozen=True)
class TopicVocab:
    """Vocabulary for one topic.

    Title patterns use the slots ``{A}`` (adjective), ``{N}``/``{N2}`` (two different nouns),
    ``{P}`` (place or proper noun) and ``{X}`` (a person, where the topic has them).
    """

    label: str  # the plain-words name used in descriptions and persona texts
    casual: str  # what a user would type at sign-up
    kinds: tuple[str, ...]
    tones: tuple[str, ...]
    patterns: tuple[str, ...]
    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    places: tuple[str, ...]
    about: tuple[str, ...]
    details: tuple[str, ...]
    tastes: tuple[str, ...]  # short phrases for persona texts
    people: tuple[str, ...] = ()
    neighbours: tuple[str, ...] = ()  # plausible secondary topics


TOPICS: dict[str, TopicVocab] = {
    "hard_scifi": TopicVocab(
        label="hard science fiction",
        casual="science fiction",
        kinds=("novel", "film", "audiobook", "novella", "TV series", "short story collection"),
        tones=("rigorous", "cerebral", "tense", "sweeping", "meticulous", "haunting"),
        patterns=(
            "{A} {N}",
            "The {N} at {P}",
            "{P} {N}",
            "Beyond {P}",
            "{N} of {P}",
            "The {A} {N}",
            "Last {N} from {P}",
        ),
        adjectives=(
            "Red",
            "Silent",
            "Cold",
            "Distant",
            "Hollow",
            "Final",
            "Long",
            "Dark",
            "Binary",
            "Quiet",
            "Outer",
            "Frozen",
            "Deep",
            "Burning",
        ),
        nouns=(
            "Orbit",
            "Horizon",
            "Signal",
            "Drift",
            "Relay",
            "Station",
            "Vector",
            "Singularity",
            "Reactor",
            "Perihelion",
            "Lagrange Point",
            "Ark",
            "Array",
            "Tether",
            "Transit",
        ),
        places=(
            "Europa",
            "Titan",
            "Ceres",
            "Proxima",
            "Enceladus",
            "the Belt",
            "Kepler-442",
            "Ganymede",
            "Tau Ceti",
            "Callisto",
            "Phobos",
            "Trappist-1",
            "the Oort Cloud",
        ),
        about=(
            "a crew of engineers repairing a failing fusion drive in deep space",
            "first contact with an alien signal decoded through mathematics",
            "colonists terraforming a frozen moon with too little oxygen",
            "a generation starship where physics dictates every decision",
            "astronauts stranded after an orbital mechanics miscalculation",
            "an AI navigator wrestling with relativity and time dilation",
            "asteroid miners caught in a solar radiation storm",
            "a physicist who finds a flaw in faster-than-light travel",
            "a space elevator disaster told with scientific realism",
            "survival on a tidally locked exoplanet",
        ),
        details=(
            "Grounded in real physics, orbital mechanics and plausible engineering.",
            "The science is hard and the science is the plot.",
            "Expect starships, relativity and believable technology rather than magic.",
            "A favourite among readers of rigorous, idea-driven science fiction.",
            "Every calculation matters in this tale of space exploration.",
        ),
        tastes=(
            "starships, orbital mechanics and believable physics",
            "idea-driven science fiction about first contact and distant colonies",
        ),
        neighbours=("space_documentaries", "technology", "fantasy"),
    ),
    "space_documentaries": TopicVocab(
        label="space documentaries",
        casual="space",
        kinds=("documentary", "docuseries", "planetarium film", "science special", "lecture"),
        tones=("awe-inspiring", "stunning", "clear", "epic", "patient", "illuminating"),
        patterns=(
            "{A} {N}",
            "Journey to {P}",
            "Inside the {N}",
            "{P} Revealed",
            "The {A} {N}",
            "Secrets of {P}",
            "Mission to {P}",
            "{N} Explained",
        ),
        adjectives=(
            "Cosmic",
            "Infinite",
            "Pale",
            "Stellar",
            "Solar",
            "Galactic",
            "Hidden",
            "Expanding",
            "Violent",
            "Ancient",
            "Restless",
            "Living",
        ),
        nouns=(
            "Universe",
            "Cosmos",
            "Nebula",
            "Galaxy",
            "Black Holes",
            "Planets",
            "Stars",
            "Comets",
            "Moons",
            "Sun",
            "Dark Matter",
            "Telescope",
            "Big Bang",
            "Exoplanets",
        ),
        places=(
            "Jupiter",
            "Saturn",
            "the Milky Way",
            "Andromeda",
            "Hubble",
            "Webb",
            "Apollo",
            "Voyager",
            "the Moon",
            "Mars",
            "Pluto",
            "Venus",
            "Mercury",
            "Neptune",
        ),
        about=(
            "how stars are born inside giant nebulae",
            "the Voyager probes leaving the solar system",
            "what the James Webb Space Telescope sees",
            "black holes and the bending of spacetime",
            "the Apollo missions that landed astronauts on the Moon",
            "the search for life on Mars and icy moons",
            "how galaxies collide and merge",
            "the storms of Jupiter and the rings of Saturn",
            "the history of the universe since the Big Bang",
            "astronauts living aboard the International Space Station",
            "exoplanets orbiting distant stars",
        ),
        details=(
            "Narrated by astronomers with stunning telescope imagery.",
            "A space documentary for anyone who looks up at the night sky.",
            "NASA footage and astrophysics explained clearly.",
            "Real missions, real science, and the scale of the cosmos.",
            "Astronomy and space exploration made vivid.",
        ),
        tastes=(
            "astronomy, planets and real space missions",
            "documentaries about black holes, galaxies and the night sky",
        ),
        neighbours=("hard_scifi", "technology", "history"),
    ),
    "romance": TopicVocab(
        label="romance",
        casual="romance novels",
        kinds=("novel", "romantic comedy", "film", "series", "novella", "audiobook"),
        tones=("heartwarming", "tender", "swoon-worthy", "bittersweet", "charming", "sweeping"),
        patterns=(
            "Love in {P}",
            "A {A} {N}",
            "{A} {N}",
            "{N} in {P}",
            "{A} {N} in {P}",
            "Falling for {X}",
            "{X} and the {A} {N}",
        ),
        adjectives=(
            "Summer",
            "Second",
            "Secret",
            "Sweet",
            "Stolen",
            "Lost",
            "Endless",
            "Unexpected",
            "Tender",
            "Moonlit",
            "Borrowed",
            "Golden",
        ),
        nouns=(
            "Kiss",
            "Promise",
            "Letters",
            "Heart",
            "Love",
            "Affair",
            "Vows",
            "Chance",
            "Wedding",
            "Rendezvous",
            "Embrace",
            "Crush",
        ),
        places=(
            "Paris",
            "Provence",
            "Tuscany",
            "Lisbon",
            "Vienna",
            "Nantucket",
            "Capri",
            "Savannah",
            "Kyoto",
            "Edinburgh",
            "Seville",
            "Prague",
        ),
        people=(
            "Clara",
            "Julien",
            "Emma",
            "Noah",
            "Rosa",
            "Theo",
            "Amelia",
            "Luca",
            "Isabel",
            "Marco",
            "Nina",
            "Oliver",
        ),
        about=(
            "two strangers who fall in love over one summer",
            "a second chance at love between old flames",
            "a slow-burn romance between rival bakers",
            "letters that reunite lovers separated by war",
            "a wedding planner who falls for the best man",
            "an unlikely love story in a small seaside town",
            "a fake engagement that turns into real love",
            "a relationship tested by distance and time",
            "a romantic getaway that changes everything",
        ),
        details=(
            "A heartwarming romance full of longing and tenderness.",
            "Love, heartbreak and a happily ever after.",
            "Perfect for readers who adore love stories and swoon-worthy couples.",
            "A tender love story about courage and devotion.",
            "Chemistry, longing glances and a satisfying romantic ending.",
        ),
        tastes=(
            "love stories with slow-burn chemistry and happy endings",
            "romantic comedies about couples finding each other",
        ),
        neighbours=("comedy", "travel", "history"),
    ),
    "true_crime": TopicVocab(
        label="true crime",
        casual="true crime",
        kinds=("podcast", "documentary", "docuseries", "book", "investigative series"),
        tones=("gripping", "chilling", "meticulous", "unsettling", "haunting", "sober"),
        patterns=(
            "The {P} {N}",
            "{A} {N}",
            "The {A} {N} of {P}",
            "Murder in {P}",
            "{N}: {P}",
            "Who Killed {X}?",
            "The Disappearance of {X}",
        ),
        adjectives=(
            "Cold",
            "Missing",
            "Silent",
            "Deadly",
            "Buried",
            "Unsolved",
            "Final",
            "Perfect",
            "Hidden",
            "Vanishing",
        ),
        nouns=(
            "Case",
            "Alibi",
            "Witness",
            "Verdict",
            "Evidence",
            "Confession",
            "Trail",
            "Files",
            "Motive",
            "Trial",
            "Suspect",
            "Ransom",
        ),
        places=(
            "Riverside",
            "Blackwood",
            "Elm Street",
            "Harlow County",
            "Pine Ridge",
            "Kessler",
            "Ashford",
            "Millbrook",
            "Lake Marlow",
            "Redfield",
            "Grayson",
            "Hollow Creek",
        ),
        people=(
            "Lily Carter",
            "Daniel Moss",
            "Anna Kowalski",
            "Jim Hartley",
            "Rosa Delgado",
            "Mark Ellison",
            "Sarah Quinn",
            "Tom Becker",
            "Helen Park",
            "Eli Brandt",
        ),
        about=(
            "a decades-old murder reopened by new DNA evidence",
            "a wrongful conviction and the detectives who overturned it",
            "a serial killer who evaded police for years",
            "the disappearance of a college student",
            "an art heist and the investigation that followed",
            "a con artist who swindled investors out of millions",
            "a small town shaken by an unsolved homicide",
            "a courtroom trial that divided a nation",
            "forensic scientists cracking a cold case",
        ),
        details=(
            "Real interviews with investigators, lawyers and families.",
            "A gripping true crime investigation built on court records.",
            "Evidence, motives and the question of guilt.",
            "For listeners drawn to real murder cases and detective work.",
            "A chilling true story of crime and justice.",
        ),
        tastes=(
            "real murder cases, cold cases and courtroom drama",
            "investigative podcasts about detectives and unsolved crimes",
        ),
        neighbours=("history", "horror"),
    ),
    "cooking": TopicVocab(
        label="cooking",
        casual="cooking",
        kinds=("cookbook", "cooking show", "recipe video", "cooking class", "food podcast"),
        tones=("mouth-watering", "relaxed", "practical", "generous", "joyful", "inventive"),
        patterns=(
            "{A} {N}",
            "{N} from {P}",
            "The {A} Kitchen",
            "{P} on a Plate",
            "{A} {N} of {P}",
            "Cooking {P}",
            "Mastering {N}",
        ),
        adjectives=(
            "Simple",
            "Weeknight",
            "Rustic",
            "Smoky",
            "Slow",
            "Fresh",
            "Spicy",
            "Golden",
            "Crispy",
            "Homemade",
            "Sunday",
            "One-Pot",
        ),
        nouns=(
            "Suppers",
            "Bread",
            "Pasta",
            "Noodles",
            "Curries",
            "Bakes",
            "Soups",
            "Grill",
            "Dumplings",
            "Roasts",
            "Tacos",
            "Pies",
            "Salads",
        ),
        places=(
            "Sicily",
            "Oaxaca",
            "Sichuan",
            "Lebanon",
            "Brittany",
            "Kerala",
            "Andalusia",
            "Hanoi",
            "Istanbul",
            "Sardinia",
            "Puglia",
            "Bangkok",
        ),
        about=(
            "easy weeknight dinners from a handful of ingredients",
            "baking crusty sourdough bread at home",
            "regional recipes and home cooking traditions",
            "knife skills, sauces and kitchen basics",
            "slow-cooked stews and comforting soups",
            "vegetarian dishes bursting with flavour",
            "the secrets of fresh handmade pasta",
            "grilling and barbecue techniques",
            "spices, curries and aromatic cooking",
            "pastry, cakes and desserts",
        ),
        details=(
            "Step-by-step recipes with tips from professional chefs.",
            "A cooking guide for anyone who loves food and flavour.",
            "Learn to cook with seasonal ingredients and simple techniques.",
            "Delicious food, clear recipes and plenty of kitchen wisdom.",
            "Great for home cooks who want to get better in the kitchen.",
        ),
        tastes=(
            "recipes, home cooking and good food",
            "cooking shows about baking bread, pasta and spicy curries",
        ),
        neighbours=("travel", "gardening", "parenting"),
    ),
    "history": TopicVocab(
        label="history",
        casual="history",
        kinds=("documentary", "history book", "podcast", "lecture series", "docuseries"),
        tones=("vivid", "authoritative", "sweeping", "meticulous", "absorbing", "fresh"),
        patterns=(
            "The {A} {N}",
            "{P} and the {A} {N}",
            "Rise of {P}",
            "The Fall of {P}",
            "{A} {N} of {P}",
            "{P}: A History",
            "Age of {P}",
        ),
        adjectives=(
            "Forgotten",
            "Fallen",
            "Ancient",
            "Medieval",
            "Great",
            "Lost",
            "Iron",
            "Rising",
            "Last",
            "Golden",
            "Imperial",
            "Silent",
        ),
        nouns=(
            "Empire",
            "Kingdoms",
            "Crown",
            "Revolution",
            "War",
            "Dynasty",
            "Republic",
            "Siege",
            "Century",
            "Frontier",
            "Legions",
            "Armada",
        ),
        places=(
            "Rome",
            "Byzantium",
            "Carthage",
            "the Ottomans",
            "the Tudors",
            "the Ming",
            "Napoleon",
            "the Vikings",
            "Persia",
            "the Aztecs",
            "Constantinople",
            "the Habsburgs",
        ),
        about=(
            "the rise and fall of the Roman Empire",
            "the battles and politics of the Napoleonic wars",
            "everyday life in medieval Europe",
            "the Viking voyages across the North Atlantic",
            "the industrial revolution and how it changed work",
            "ancient Egypt and the building of the pyramids",
            "the Silk Road and trade between empires",
            "the Second World War seen from the home front",
            "revolutions that reshaped the modern world",
            "the dynasties of imperial China",
        ),
        details=(
            "Historians bring the past to life with primary sources.",
            "A history of kings, wars and ordinary people.",
            "Archival documents and maps reconstruct a vanished world.",
            "For anyone fascinated by historical events and how they shaped today.",
            "Centuries of history told as a compelling story.",
        ),
        tastes=(
            "history, ancient empires and the wars that shaped them",
            "historical documentaries about medieval Europe and the Romans",
        ),
        neighbours=("true_crime", "travel", "classical_music"),
    ),
    "jazz": TopicVocab(
        label="jazz",
        casual="jazz",
        kinds=("album", "live recording", "jazz podcast", "concert film", "compilation"),
        tones=("smoky", "swinging", "mellow", "adventurous", "intimate", "soulful"),
        patterns=(
            "{A} {N}",
            "Live at {P}",
            "{P} {N}",
            "{A} {N} at {P}",
            "{N} for a {A} Night",
            "Nights at {P}",
        ),
        adjectives=(
            "Blue",
            "Late",
            "Smoky",
            "Midnight",
            "Cool",
            "Velvet",
            "Round",
            "Swinging",
            "Mellow",
            "Minor",
            "Modal",
            "Lazy",
        ),
        nouns=(
            "Sessions",
            "Standards",
            "Grooves",
            "Ballads",
            "Trio",
            "Quartet",
            "Changes",
            "Blues",
            "Serenade",
            "Stomp",
            "Suite",
            "Nocturne",
        ),
        places=(
            "Harlem",
            "Birdland",
            "the Village Vanguard",
            "New Orleans",
            "Storyville",
            "52nd Street",
            "Montreux",
            "Newport",
            "Chicago",
            "the Blue Note",
            "Kansas City",
            "Minton's",
        ),
        about=(
            "a saxophone quartet improvising on bebop standards",
            "a piano trio playing late-night ballads",
            "New Orleans brass bands and early jazz traditions",
            "modal jazz and long improvised solos",
            "a big band swinging through classic standards",
            "smoky vocal jazz and torch songs",
            "hard bop grooves with trumpet and drums",
            "contemporary jazz fusion with electric bass",
            "the story of a legendary jazz club",
        ),
        details=(
            "Improvisation, swing and a rhythm section that breathes.",
            "A jazz recording for late nights and good headphones.",
            "Saxophone, piano, bass and drums in conversation.",
            "Essential listening for jazz lovers.",
            "Bebop, blues and the spirit of the jazz age.",
        ),
        tastes=(
            "jazz, bebop and late-night piano trios",
            "improvised jazz with saxophone solos and swing",
        ),
        neighbours=("classical_music", "history", "cooking"),
    ),
    "classical_music": TopicVocab(
        label="classical music",
        casual="classical music",
        kinds=("recording", "album", "concert film", "opera production", "music documentary"),
        tones=("luminous", "majestic", "delicate", "passionate", "serene", "definitive"),
        patterns=(
            "{P}: {A} {N}",
            "The {A} {N}",
            "{P} {N}",
            "{N} by {P}",
            "An Evening of {P}",
            "{A} {N} of {P}",
        ),
        adjectives=(
            "Complete",
            "Late",
            "Early",
            "Romantic",
            "Baroque",
            "Sacred",
            "Pastoral",
            "Eternal",
            "Nocturnal",
            "Grand",
            "Unfinished",
            "Winter",
        ),
        nouns=(
            "Symphonies",
            "Sonatas",
            "Concertos",
            "Nocturnes",
            "Preludes",
            "Quartets",
            "Requiem",
            "Variations",
            "Overtures",
            "Etudes",
            "Cantatas",
            "Suites",
        ),
        places=(
            "Bach",
            "Mozart",
            "Beethoven",
            "Chopin",
            "Brahms",
            "Schubert",
            "Vivaldi",
            "Debussy",
            "Tchaikovsky",
            "Mahler",
            "Haydn",
            "Dvořák",
        ),
        about=(
            "a string quartet performing late Beethoven",
            "a virtuoso pianist playing Chopin nocturnes",
            "a symphony orchestra performing Mahler",
            "baroque concertos on period instruments",
            "an opera of love and tragedy staged in Vienna",
            "sacred choral music and requiems",
            "the life of a composer and his symphonies",
            "violin concertos from the romantic era",
        ),
        details=(
            "Orchestral music performed with precision and feeling.",
            "A classical music recording for quiet evenings.",
            "Symphonies, sonatas and the great composers.",
            "Concert hall acoustics and a world-class orchestra.",
            "Essential listening for lovers of classical music.",
        ),
        tastes=(
            "classical music, symphonies and piano sonatas",
            "orchestral concerts and opera by the great composers",
        ),
        neighbours=("jazz", "history"),
    ),
    "football": TopicVocab(
        label="football",
        casual="football",
        kinds=("documentary", "match highlights", "football podcast", "analysis show", "biography"),
        tones=("thrilling", "passionate", "raw", "nostalgic", "tactical", "emotional"),
        patterns=(
            "The {A} {N}",
            "{A} {N} at {P}",
            "{P}: The {A} {N}",
            "Inside {P}",
            "Road to {P}",
            "{N} Stories",
            "European Nights at {P}",
        ),
        adjectives=(
            "Beautiful",
            "Final",
            "Golden",
            "Lost",
            "Perfect",
            "Last",
            "Glorious",
            "Fearless",
            "Famous",
            "Unbeaten",
            "Title",
            "Relegation",
        ),
        nouns=(
            "Season",
            "Derby",
            "Cup Run",
            "Goal",
            "Kick-Off",
            "Treble",
            "Comeback",
            "Penalty",
            "Striker",
            "Midfield",
            "Dressing Room",
            "Terraces",
        ),
        places=(
            "Anfield",
            "the Bernabeu",
            "San Siro",
            "Old Trafford",
            "the Camp Nou",
            "Wembley",
            "Dortmund",
            "Napoli",
            "Celtic Park",
            "the Maracana",
            "Ajax",
            "Boca",
        ),
        about=(
            "a club's title-winning season in the Premier League",
            "tactics, pressing and formations explained",
            "a legendary striker's career and greatest goals",
            "the World Cup from qualifying to the final",
            "a fierce local derby and its fans",
            "the Champions League nights that defined a club",
            "youth academies and the making of footballers",
            "a manager rebuilding a struggling team",
            "the greatest comebacks in football history",
        ),
        details=(
            "Goals, tactics and the passion of the supporters.",
            "A football story for fans of the beautiful game.",
            "Match footage, dressing room access and player interviews.",
            "For anyone who lives for soccer, league tables and matchday.",
            "The drama of football on and off the pitch.",
        ),
        tastes=(
            "football matches, goals and club rivalries",
            "soccer tactics and stories of the beautiful game",
        ),
        neighbours=("fitness", "history", "comedy"),
    ),
    "fitness": TopicVocab(
        label="fitness",
        casual="working out",
        kinds=(
            "workout video",
            "training program",
            "fitness guide",
            "fitness podcast",
            "exercise class",
        ),
        tones=("energising", "no-nonsense", "motivating", "science-based", "tough", "friendly"),
        patterns=(
            "{A} {N}",
            "{N} in {P}",
            "{A} {N} for {P}",
            "{N} Plan: {P}",
            "The {A} {N} Method",
        ),
        adjectives=(
            "Strong",
            "Lean",
            "Daily",
            "Total",
            "Functional",
            "Explosive",
            "Core",
            "Morning",
            "Athletic",
            "Steady",
            "Power",
            "Fearless",
        ),
        nouns=(
            "Body",
            "Strength",
            "Cardio",
            "Mobility",
            "Stretch",
            "Conditioning",
            "Burn",
            "Reset",
            "Endurance",
            "Grind",
            "Lift",
            "Stride",
        ),
        places=(
            "30 Days",
            "10 Minutes",
            "12 Weeks",
            "Home",
            "the Gym",
            "the Track",
            "Beginners",
            "Runners",
            "Over 50",
            "Busy People",
            "the Park",
            "Desk Workers",
        ),
        about=(
            "strength training with kettlebells and dumbbells",
            "high-intensity interval training for fat loss",
            "yoga and mobility for stiff backs",
            "running your first marathon",
            "bodyweight workouts you can do at home",
            "building muscle with progressive overload",
            "core strength and better posture",
            "recovery, stretching and sleep for athletes",
            "cardio and endurance training",
        ),
        details=(
            "Clear exercise demonstrations and a progressive workout plan.",
            "A fitness routine for getting stronger and healthier.",
            "Sweat, reps and coaching cues from certified trainers.",
            "For anyone who enjoys exercise, training and the gym.",
            "Build strength, endurance and healthy habits.",
        ),
        tastes=(
            "workouts, strength training and running",
            "fitness programs, exercise and healthy habits",
        ),
        neighbours=("cooking", "football", "parenting"),
    ),
    "personal_finance": TopicVocab(
        label="personal finance",
        casual="saving money",
        kinds=(
            "guide",
            "money podcast",
            "online course",
            "personal finance book",
            "explainer video",
        ),
        tones=("practical", "reassuring", "no-nonsense", "clear-eyed", "friendly", "thorough"),
        patterns=(
            "{A} {N}",
            "{N} for {P}",
            "The {A} {N} Plan",
            "{A} {N} for {P}",
            "{N} Made Simple",
            "Mastering {N}",
        ),
        adjectives=(
            "Smart",
            "Frugal",
            "Debt-Free",
            "Rich",
            "Simple",
            "Quiet",
            "Steady",
            "Wealthy",
            "Early",
            "Lean",
            "Honest",
            "Modest",
        ),
        nouns=(
            "Money",
            "Budget",
            "Savings",
            "Investing",
            "Wealth",
            "Retirement",
            "Paycheck",
            "Portfolio",
            "Index Funds",
            "Mortgage",
            "Pension",
            "Side Hustle",
        ),
        places=(
            "Your Twenties",
            "Your Thirties",
            "Families",
            "Freelancers",
            "Beginners",
            "Renters",
            "Couples",
            "Graduates",
            "Retirees",
            "Small Savers",
            "First-Time Buyers",
            "Everyone",
        ),
        about=(
            "budgeting, saving and getting out of debt",
            "investing in index funds for the long term",
            "planning for an early retirement",
            "buying your first home and choosing a mortgage",
            "taxes, pensions and compound interest",
            "building an emergency fund",
            "frugal living without feeling deprived",
            "managing money as a couple",
            "side hustles and growing your income",
        ),
        details=(
            "Practical personal finance advice with worked examples.",
            "Money management, budgets and investing explained plainly.",
            "For anyone who wants to save more and spend wisely.",
            "Financial independence, one spreadsheet at a time.",
            "Clear steps towards better money habits and wealth building.",
        ),
        tastes=(
            "budgeting, saving and investing",
            "personal finance advice about money, debt and retirement",
        ),
        neighbours=("technology", "parenting", "travel"),
    ),
    "travel": TopicVocab(
        label="travel",
        casual="travel",
        kinds=("travel show", "travel guide", "travel vlog", "travelogue", "travel podcast"),
        tones=("sun-drenched", "adventurous", "gentle", "inspiring", "curious", "lyrical"),
        patterns=(
            "{A} {N} of {P}",
            "{P} by Train",
            "{P} on Foot",
            "Backroads of {P}",
            "{A} {N}",
            "Around {P}",
            "Wandering {P}",
        ),
        adjectives=(
            "Slow",
            "Hidden",
            "Wild",
            "Lost",
            "Grand",
            "Sunlit",
            "Winding",
            "Forgotten",
            "Quiet",
            "Coastal",
            "Northern",
            "Southern",
        ),
        nouns=(
            "Roads",
            "Journeys",
            "Trails",
            "Islands",
            "Coasts",
            "Railways",
            "Cities",
            "Villages",
            "Passages",
            "Markets",
            "Harbours",
            "Highlands",
        ),
        places=(
            "Patagonia",
            "Japan",
            "Iceland",
            "Morocco",
            "Vietnam",
            "Portugal",
            "Peru",
            "Norway",
            "Georgia",
            "New Zealand",
            "Sri Lanka",
            "Scotland",
            "the Balkans",
            "Chile",
        ),
        about=(
            "backpacking across mountains and remote villages",
            "slow travel by train through the countryside",
            "island hopping and hidden beaches",
            "street food markets and local culture",
            "road trips along wild coastlines",
            "budget travel tips for long journeys",
            "hiking trails and scenic landscapes",
            "city breaks with museums and cafes",
            "travelling with a camera and a map",
        ),
        details=(
            "Beautiful destinations, local guides and practical travel tips.",
            "A travel story about journeys, tourism and adventure abroad.",
            "For anyone dreaming of their next trip or holiday.",
            "Landscapes, cultures and the joy of exploring new places.",
            "Pack a bag: wanderlust guaranteed.",
        ),
        tastes=(
            "travel, backpacking and exploring new countries",
            "travel shows about road trips, islands and local food markets",
        ),
        neighbours=("cooking", "nature_wildlife", "history"),
    ),
    "gardening": TopicVocab(
        label="gardening",
        casual="gardening",
        kinds=(
            "gardening show",
            "gardening guide",
            "gardening podcast",
            "how-to video",
            "gardening book",
        ),
        tones=("soothing", "hands-on", "cheerful", "practical", "seasonal", "gentle"),
        patterns=(
            "The {A} {N}",
            "{A} {N}",
            "{N} for {P}",
            "Growing {N}",
            "A Year in the {A} {N}",
        ),
        adjectives=(
            "Small",
            "Wild",
            "Kitchen",
            "Cottage",
            "Shady",
            "Organic",
            "Urban",
            "Patient",
            "Thriving",
            "No-Dig",
            "Seasonal",
            "Balcony",
        ),
        nouns=(
            "Garden",
            "Allotment",
            "Borders",
            "Roses",
            "Vegetables",
            "Seeds",
            "Compost",
            "Herbs",
            "Orchard",
            "Greenhouse",
            "Perennials",
            "Bulbs",
        ),
        places=(
            "Spring",
            "Autumn",
            "Beginners",
            "Small Spaces",
            "Dry Summers",
            "Clay Soil",
            "Pollinators",
            "Every Month",
            "Shade",
            "Containers",
            "Cold Climates",
            "Wildlife",
        ),
        about=(
            "growing vegetables in raised beds",
            "composting and caring for healthy soil",
            "planting a cottage garden full of flowers",
            "pruning roses and fruit trees",
            "starting seeds indoors before spring",
            "attracting bees and pollinators",
            "container gardening on a small balcony",
            "keeping houseplants alive",
            "designing borders with perennials",
        ),
        details=(
            "Hands-on gardening advice for every season.",
            "Plants, soil and the slow pleasure of growing things.",
            "For gardeners who love flowers, vegetables and getting their hands dirty.",
            "Practical tips on planting, watering and harvest.",
            "A green-fingered guide to a thriving garden.",
        ),
        tastes=(
            "gardening, growing vegetables and flowers",
            "garden shows about compost, seeds and pruning roses",
        ),
        neighbours=("nature_wildlife", "cooking"),
    ),
    "horror": TopicVocab(
        label="horror",
        casual="horror movies",
        kinds=(
            "horror film",
            "horror novel",
            "horror series",
            "horror podcast",
            "short story collection",
        ),
        tones=("terrifying", "creeping", "gruesome", "atmospheric", "relentless", "eerie"),
        patterns=(
            "The {A} {N}",
            "{A} {N}",
            "The {N} at {P}",
            "{P}",
            "Night at {P}",
            "Don't Open the {N}",
            "Beneath {P}",
        ),
        adjectives=(
            "Hollow",
            "Crawling",
            "Whispering",
            "Rotting",
            "Pale",
            "Silent",
            "Drowned",
            "Blackened",
            "Hungry",
            "Sleepless",
            "Twisted",
            "Shrouded",
        ),
        nouns=(
            "House",
            "Woods",
            "Cellar",
            "Hour",
            "Chapel",
            "Asylum",
            "Doll",
            "Harvest",
            "Shadows",
            "Mirror",
            "Well",
            "Orphanage",
        ),
        places=(
            "Ravenmoor",
            "Black Hollow",
            "Crowhurst",
            "Wychwood",
            "Grimsby Lane",
            "Saltmarsh",
            "Dunmore",
            "Hagstone",
            "Ashgrove",
            "Marrow Hill",
            "Thornfield",
            "Briar Point",
        ),
        about=(
            "a haunted house that will not let its family leave",
            "a cursed doll and the children who found it",
            "a creature stalking a snowed-in village",
            "a demonic possession in a remote chapel",
            "teenagers trapped in an abandoned asylum",
            "a ghost story told around a dying fire",
            "a cult in the woods preparing a terrible ritual",
            "a psychological horror of dread and paranoia",
            "a monster lurking beneath a frozen lake",
        ),
        details=(
            "Terrifying scares, creeping dread and sleepless nights.",
            "A horror story for fans of ghosts, monsters and the supernatural.",
            "Not for the faint of heart: blood, screams and shadows.",
            "Spine-chilling and genuinely frightening.",
            "Dark, eerie and built to haunt you long after.",
        ),
        tastes=(
            "horror, ghosts and monsters",
            "scary films about haunted houses and the supernatural",
        ),
        neighbours=("true_crime", "fantasy", "comedy"),
    ),
    "comedy": TopicVocab(
        label="comedy",
        casual="comedy",
        kinds=("stand-up special", "sitcom", "comedy film", "comedy podcast", "sketch show"),
        tones=("hilarious", "silly", "sharp", "warm-hearted", "absurd", "cheeky"),
        patterns=(
            "{A} {N}",
            "The {A} {N}",
            "{P}'s {A} {N}",
            "Everybody Hates {P}",
            "{P} Ruins the {N}",
            "Meanwhile at the {N}",
            "The {N} from Hell",
        ),
        adjectives=(
            "Awkward",
            "Totally",
            "Mostly",
            "Slightly",
            "Hopeless",
            "Loud",
            "Accidental",
            "Terrible",
            "Brilliant",
            "Ridiculous",
            "Unlucky",
            "Chaotic",
        ),
        nouns=(
            "Neighbours",
            "Roommates",
            "Office",
            "Family",
            "Weekend",
            "Wedding",
            "Holiday",
            "Dinner Party",
            "Interns",
            "Landlord",
            "Road Trip",
            "Reunion",
        ),
        places=(
            "Kevin",
            "Aunt Maureen",
            "Dave",
            "the Pattersons",
            "Gary",
            "Brenda",
            "the Committee",
            "Uncle Stan",
            "Nigel",
            "the Night Shift",
            "Phil",
            "Sandra",
        ),
        about=(
            "a hapless office worker who keeps making things worse",
            "roommates whose schemes always backfire",
            "a stand-up comedian riffing on family and dating",
            "a chaotic family holiday gone wrong",
            "absurd sketches and silly characters",
            "two friends on a disastrous road trip",
            "a wedding where everything that can go wrong does",
            "observational jokes about modern life",
        ),
        details=(
            "Laugh-out-loud jokes, witty banter and ridiculous situations.",
            "A comedy that is funny, silly and full of heart.",
            "Punchlines, awkward moments and great comic timing.",
            "For anyone who loves humour, sitcoms and stand-up.",
            "Guaranteed giggles and a few big belly laughs.",
        ),
        tastes=(
            "comedy, sitcoms and stand-up",
            "funny shows full of jokes and absurd situations",
        ),
        neighbours=("romance", "football", "parenting"),
    ),
    "video_games": TopicVocab(
        label="video games",
        casual="video games",
        kinds=(
            "video game",
            "game review",
            "let's play series",
            "gaming podcast",
            "speedrun documentary",
        ),
        tones=("addictive", "fast-paced", "nostalgic", "inventive", "competitive", "polished"),
        patterns=(
            "{A} {N}",
            "{N}: {P}",
            "{A} {N} in {P}",
            "Escape from {P}",
            "Return to {P}",
            "{N} Masters",
        ),
        adjectives=(
            "Pixel",
            "Neon",
            "Broken",
            "Endless",
            "Infinite",
            "Shattered",
            "Retro",
            "Turbo",
            "Hyper",
            "Iron",
            "Glitched",
            "Crimson",
        ),
        nouns=(
            "Quest",
            "Dungeon",
            "Arena",
            "Raid",
            "Respawn",
            "Boss Rush",
            "Speedrun",
            "Loot",
            "Combo",
            "Checkpoint",
            "Sandbox",
            "Frontier",
        ),
        places=(
            "Level 99",
            "the Overworld",
            "Sector 7",
            "the Pixel Realm",
            "New Game Plus",
            "Mecha City",
            "Block World",
            "the Final Zone",
            "Cyber Alley",
            "the Lost Cartridge",
            "Castle Bitlands",
            "Hub Town",
        ),
        about=(
            "an open-world role-playing game with hundreds of quests",
            "competitive multiplayer shooters and esports",
            "indie platformers with tight controls",
            "speedrunning a classic console game",
            "a strategy game about building an empire",
            "retro arcade games and their high scores",
            "cooperative survival and crafting games",
            "the latest console and PC game releases",
            "game design, boss fights and level design",
        ),
        details=(
            "Gameplay footage, controller tips and honest reviews.",
            "A video game experience for players of all skill levels.",
            "For gamers who love consoles, PC games and esports.",
            "Levels, bosses and loot to chase.",
            "Press start: hours of gaming ahead.",
        ),
        tastes=(
            "video games, esports and gameplay videos",
            "console and PC games, especially role-playing games and retro arcade classics",
        ),
        neighbours=("technology", "fantasy", "comedy"),
    ),
    "parenting": TopicVocab(
        label="parenting",
        casual="parenting tips",
        kinds=(
            "parenting guide",
            "parenting podcast",
            "parenting book",
            "video series",
            "workshop",
        ),
        tones=("reassuring", "honest", "warm", "practical", "funny", "compassionate"),
        patterns=(
            "{A} {N}",
            "{A} Parenting for {P}",
            "Surviving {P}",
            "The {A} Parent",
            "{N} and {P}",
            "The {A} {N} Handbook",
        ),
        adjectives=(
            "Calm",
            "Happy",
            "Tired",
            "Gentle",
            "Confident",
            "Playful",
            "Patient",
            "Busy",
            "Modern",
            "Brave",
            "Honest",
            "Curious",
        ),
        nouns=(
            "Parents",
            "Toddlers",
            "Mornings",
            "Bedtimes",
            "Teens",
            "Families",
            "Kids",
            "Babies",
            "Siblings",
            "Tantrums",
            "Playtime",
            "Homework",
        ),
        places=(
            "the First Year",
            "the Teen Years",
            "Working Parents",
            "Dads",
            "New Mums",
            "Twins",
            "Big Families",
            "Single Parents",
            "Preschoolers",
            "Grandparents",
            "School Days",
            "Screen Time",
        ),
        about=(
            "sleep routines for babies and toddlers",
            "handling tantrums with patience",
            "talking to teenagers about screens and friends",
            "balancing work and family life",
            "raising siblings who get along",
            "helping kids with homework and school stress",
            "gentle discipline and positive parenting",
            "the first year with a newborn",
            "family meals and picky eaters",
        ),
        details=(
            "Practical parenting advice from child psychologists and real parents.",
            "For mums and dads raising children through every stage.",
            "Reassuring, honest help for tired parents.",
            "Kids, family routines and the joys of raising children.",
            "Evidence-based tips for happier family life.",
        ),
        tastes=(
            "parenting advice about toddlers, teens and family life",
            "practical help with raising children",
        ),
        neighbours=("cooking", "personal_finance", "fitness"),
    ),
    "nature_wildlife": TopicVocab(
        label="nature and wildlife",
        casual="nature documentaries",
        kinds=(
            "nature documentary",
            "wildlife series",
            "nature podcast",
            "photography book",
            "field guide",
        ),
        tones=("breathtaking", "intimate", "majestic", "moving", "patient", "spectacular"),
        patterns=(
            "{A} {N}",
            "{A} {P}",
            "{N} of {P}",
            "The {A} {N}",
            "Life in {P}",
            "Seasons of {P}",
        ),
        adjectives=(
            "Wild",
            "Untamed",
            "Living",
            "Frozen",
            "Hidden",
            "Secret",
            "Blue",
            "Green",
            "Savage",
            "Ancient",
            "Vanishing",
            "Great",
        ),
        nouns=(
            "Planet",
            "Oceans",
            "Forests",
            "Rivers",
            "Savanna",
            "Reefs",
            "Tundra",
            "Wetlands",
            "Jungle",
            "Migration",
            "Predators",
            "Coasts",
        ),
        places=(
            "Africa",
            "the Arctic",
            "Borneo",
            "the Amazon",
            "Madagascar",
            "the Serengeti",
            "Yellowstone",
            "the Galapagos",
            "Antarctica",
            "the Himalayas",
            "Alaska",
            "the Okavango",
        ),
        about=(
            "lions, elephants and the great migration",
            "whales and dolphins in the open ocean",
            "coral reefs and the creatures that depend on them",
            "birds of prey and their hunting skills",
            "polar bears on melting sea ice",
            "rainforest insects, frogs and orangutans",
            "wolves returning to their old territories",
            "animal behaviour through the changing seasons",
            "conservation efforts to save endangered species",
        ),
        details=(
            "Breathtaking wildlife footage and natural history.",
            "A nature documentary celebrating animals and wild places.",
            "For anyone who loves animals, ecosystems and conservation.",
            "Filmed over years in the wild by patient camera crews.",
            "The natural world at its most beautiful and brutal.",
        ),
        tastes=(
            "nature documentaries about animals and wild places",
            "wildlife, oceans, rainforests and conservation",
        ),
        neighbours=("travel", "gardening", "space_documentaries"),
    ),
    "technology": TopicVocab(
        label="technology",
        casual="tech",
        kinds=("tech podcast", "explainer video", "tech review", "documentary", "book"),
        tones=("insightful", "sharp", "accessible", "in-depth", "forward-looking", "candid"),
        patterns=(
            "{A} {N}",
            "{N} of {P}",
            "Inside {P}",
            "The {A} {N}",
            "Decoding {P}",
            "{A} {N} and {N2}",
        ),
        adjectives=(
            "Silicon",
            "Quantum",
            "Open",
            "Digital",
            "Smart",
            "Invisible",
            "Connected",
            "Deep",
            "Neural",
            "Cloud",
            "Mobile",
            "Secure",
        ),
        nouns=(
            "Code",
            "Chips",
            "Networks",
            "Machines",
            "Algorithms",
            "Startups",
            "Robots",
            "Software",
            "Data",
            "Devices",
            "Circuits",
            "Interfaces",
        ),
        places=(
            "the Valley",
            "Tomorrow",
            "the Internet",
            "Your Pocket",
            "the Data Center",
            "the Lab",
            "the Future",
            "the Browser",
            "the Cloud",
            "Open Source",
            "the Kernel",
            "the Edge",
        ),
        about=(
            "how artificial intelligence and machine learning work",
            "the semiconductor industry and computer chips",
            "cybersecurity, hackers and data privacy",
            "startups and the business of software",
            "smartphones, gadgets and consumer electronics",
            "the history of the internet",
            "robotics and automation",
            "programming and open-source software",
            "quantum computing explained simply",
        ),
        details=(
            "Technology explained clearly for curious minds.",
            "Gadgets, software and the engineers behind them.",
            "For anyone interested in computers, innovation and tech news.",
            "Code, hardware and the future of computing.",
            "Silicon Valley stories and honest product reviews.",
        ),
        tastes=(
            "technology, gadgets and software",
            "tech explainers about artificial intelligence, computers and the internet",
        ),
        neighbours=("hard_scifi", "video_games", "personal_finance"),
    ),
    "fantasy": TopicVocab(
        label="fantasy",
        casual="fantasy books",
        kinds=("fantasy novel", "fantasy series", "film", "audiobook", "saga"),
        tones=("epic", "enchanting", "dark", "sweeping", "whimsical", "grim"),
        patterns=(
            "The {A} {N}",
            "{N} of {P}",
            "{A} {N}",
            "The Last {N} of {P}",
            "Song of {P}",
            "{P} Rising",
            "The {N} and the {N2}",
        ),
        adjectives=(
            "Shadow",
            "Iron",
            "Crimson",
            "Hollow",
            "Emerald",
            "Broken",
            "Wandering",
            "Last",
            "Sunken",
            "Silver",
            "Ashen",
            "Thorned",
        ),
        nouns=(
            "Crown",
            "Throne",
            "Blade",
            "Dragon",
            "Oath",
            "Tower",
            "Sorcerer",
            "Kingdom",
            "Wyrm",
            "Keep",
            "Chalice",
            "Sigil",
        ),
        places=(
            "Eldoria",
            "Vael",
            "the Northmarch",
            "Duskhaven",
            "Morrowgate",
            "the Ember Isles",
            "Caerwyn",
            "Ostmere",
            "Thalassar",
            "Greywater",
            "the Wildwood",
            "Karesh",
        ),
        about=(
            "a young mage discovering forbidden magic",
            "a quest to destroy a cursed crown",
            "dragons returning to a divided kingdom",
            "an exiled prince reclaiming his throne",
            "a thief caught between rival sorcerers",
            "elves, dwarves and an ancient prophecy",
            "a knight sworn to protect a dying god",
            "an epic war between kingdoms and wizards",
            "a heroine bound by an unbreakable oath",
        ),
        details=(
            "Epic fantasy with magic, swords and sweeping world-building.",
            "Dragons, wizards and a quest worth following.",
            "For readers who love fantasy worlds, myths and legends.",
            "Sorcery, prophecy and battles for the realm.",
            "An enchanting adventure in a magical kingdom.",
        ),
        tastes=(
            "fantasy with dragons, magic and epic quests",
            "fantasy novels about wizards, kingdoms and ancient prophecies",
        ),
        neighbours=("hard_scifi", "horror", "video_games", "romance"),
    ),
}

# Hand-written items whose titles need escaping in CSV or HTML (quotes, ampersands, commas,
# apostrophes, angle brackets, non-ASCII): renderers and parsers must survive them.
SPECIAL_ITEMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Rock & Roll Kitchen",
        'A cooking show where a touring band\'s chef makes comfort food backstage, "secret" '
        "sauces included.",
        ("cooking",),
    ),
    (
        "Don't Look Up, Again",
        "A satirical comedy film about astronomers nobody listens to as a comet heads for Earth.",
        ("comedy", "space_documentaries"),
    ),
    (
        'The "Perfect" Season',
        "A football documentary about an unbeaten league season, told by the players who lived it.",
        ("football",),
    ),
    (
        "Salt, Smoke & Fire",
        "A cooking and travel show about barbecue, grilling and street food across three continents.",
        ("cooking", "travel"),
    ),
    (
        'Mum\'s "Quick" Dinners, Vol. 2',
        "A parenting cookbook of fast family meals for picky eaters and busy weeknights.",
        ("parenting", "cooking"),
    ),
    (
        "Stars, Dust & Silence",
        "A space documentary about how stars are born and die, with telescope imagery from Webb.",
        ("space_documentaries",),
    ),
    (
        "Who's Afraid of the Dark?",
        "A horror anthology of ghost stories and haunted houses, best enjoyed with the lights on.",
        ("horror",),
    ),
    (
        "Savings > Spending: A Year on a Budget",
        "A personal finance guide to budgeting, saving and paying off debt in twelve months.",
        ("personal_finance",),
    ),
    (
        "<Code/> & Coffee",
        "A technology podcast about programming, open-source software and developer tools.",
        ("technology",),
    ),
    (
        'Bach & Beyond: "Live" in Leipzig',
        "A classical music concert film of Bach cantatas and baroque concertos.",
        ("classical_music",),
    ),
    (
        "Lions, Tigers & Bears, Oh My",
        "A wildlife documentary about big predators, from the African savanna to Alaska.",
        ("nature_wildlife",),
    ),
    (
        "Café Society, Paris 1925",
        "A history documentary about jazz clubs, artists and nightlife in 1920s Paris.",
        ("history", "jazz"),
    ),
)

CLICKBAIT_TITLES = (
    "You Won't Believe What Happens in {B}",
    "{B}: The Ending Nobody Saw Coming",
    "{n} Shocking Secrets Behind {B}",
    "Why Everyone Is Obsessed with {B}",
    "{n} Things About {B} That Will Blow Your Mind",
    "Stop Everything: {B} Is Here",
    "What Nobody Tells You About {B}",
    "{B} Will Leave You Speechless",
)

CLICKBAIT_HOOKS = (
    "Everyone is talking about it, and you won't believe the ending.",
    "The {kind} that broke the internet: see why before it's gone.",
    "Critics are stunned, and number three will shock you.",
    "This is the {kind} they don't want you to see.",
    "Millions have already watched; find out what the fuss is about.",
)


def _article(word: str) -> str:
    # Silent "h" words take "an"; the vocabularies hold no "u"-as-"you" words.
    vowel_sound = word[:1].lower() in "aeiou" or word.lower().startswith(("honest", "hour"))
    return "an" if vowel_sound else "a"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _base_title(rng: np.random.Generator, vocab: TopicVocab) -> str:
    pattern = _pick(rng, vocab.patterns)
    noun = _pick(rng, vocab.nouns)
    noun2 = _pick(rng, [n for n in vocab.nouns if n != noun])
    title = pattern.format(
        A=_pick(rng, vocab.adjectives),
        N=noun,
        N2=noun2,
        P=_pick(rng, vocab.places),
        X=_pick(rng, vocab.people) if vocab.people else _pick(rng, vocab.places),
    )
    return _capitalise(title)


def _clickbait_title(rng: np.random.Generator, base: str) -> str:
    return _pick(rng, CLICKBAIT_TITLES).format(B=base, n=int(rng.integers(5, 13)))


def _description(
    rng: np.random.Generator, vocab: TopicVocab, secondary: TopicVocab | None, clickbait: bool
) -> str:
    kind = _pick(rng, vocab.kinds)
    tone = _pick(rng, vocab.tones)
    about = _pick(rng, vocab.about)
    template = int(rng.integers(6))
    if template == 0:
        first = f"{_capitalise(_article(tone))} {tone} {kind} about {about}."
    elif template == 1:
        first = f"This {kind} explores {about}."
    elif template == 2:
        first = (
            f"{_capitalise(_article(tone))} {tone} {kind} about {about}, for fans of {vocab.label}."
        )
    elif template == 3:
        first = f"{_capitalise(about)}: {_article(kind)} {kind} for lovers of {vocab.label}."
    elif template == 4:
        first = f"At its heart, this {tone} {kind} is about {about}."
    else:
        first = f"{_capitalise(_article(kind))} {kind} on {about}."
    sentences = [first]
    # The topic's plain name must appear somewhere so the encoder ties the item to its topic.
    if vocab.label not in first or rng.random() < 0.5:
        sentences.append(_pick(rng, vocab.details))
    if secondary is not None:
        if rng.random() < 0.5:
            sentences.append(f"It also touches on {_pick(rng, secondary.about)}.")
        else:
            sentences.append(f"Fans of {secondary.label} will find plenty here too.")
    if clickbait:
        sentences.append(_pick(rng, CLICKBAIT_HOOKS).format(kind=kind))
    return " ".join(sentences)


def _topic_sizes(rng: np.random.Generator, n_items: int, n_topics: int) -> np.ndarray:
    """Uneven but bounded topic sizes, shape ``(n_topics,)``, summing to ``n_items``."""
    extra = n_items - MIN_ITEMS_PER_TOPIC * n_topics
    if extra < 0:
        raise ValueError(f"n_items={n_items} is below {MIN_ITEMS_PER_TOPIC} per topic")
    weights = rng.dirichlet(np.full(n_topics, 3.0))
    return MIN_ITEMS_PER_TOPIC + rng.multinomial(extra, weights)


def generate_catalog_rows(
    seed: int = DEFAULT_SEED, n_items: int = DEFAULT_N_ITEMS
) -> list[dict[str, str]]:
    """Generate the default catalog as CSV-ready rows of strings.

    Parameters
    ----------
    seed:
        Seed of the single ``numpy.random.Generator`` behind every choice.
    n_items:
        Number of generated items; the hand-written special items come on top.

    Returns
    -------
    list of dict
        One dict per item with the keys of ``CATALOG_COLUMNS``, already formatted.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    names = list(TOPICS)
    sizes = _topic_sizes(rng, n_items, len(names))

    drafts: list[tuple[tuple[str, ...], str | None, str | None]] = []
    for name, size in zip(names, sizes, strict=True):
        vocab = TOPICS[name]
        for _ in range(int(size)):
            topics: tuple[str, ...] = (name,)
            if rng.random() < SECONDARY_TOPIC_SHARE:
                topics = (name, _pick(rng, vocab.neighbours))
            drafts.append((topics, None, None))
    for title, description, topics in SPECIAL_ITEMS:
        drafts.append((topics, title, description))

    n_total = len(drafts)
    order = rng.permutation(n_total)  # ids must not reveal topics
    drafts = [drafts[i] for i in order]
    n_clickbait = int(round(CLICKBAIT_SHARE * n_total))
    clickbait = np.zeros(n_total, dtype=bool)
    special = np.array([d[1] is not None for d in drafts])
    clickbait[rng.choice(np.flatnonzero(~special), size=n_clickbait, replace=False)] = True

    quality = np.where(
        clickbait, rng.normal(-0.35, 0.3, n_total), rng.normal(0.1, 0.35, n_total)
    ).clip(-1.0, 1.0)
    appeal = np.where(
        clickbait, rng.uniform(1.0, 2.0, n_total), 0.3 * rng.beta(1.5, 4.0, n_total)
    ).clip(0.0, 2.0)
    ranks = rng.permutation(n_total) + 1
    popularity = ranks.astype(np.float64) ** -ZIPF_EXPONENT
    popularity /= popularity.sum()

    seen_titles = {title.casefold() for title, _, _ in SPECIAL_ITEMS}
    rows: list[dict[str, str]] = []
    for i, (topics, fixed_title, fixed_description) in enumerate(drafts):
        vocab = TOPICS[topics[0]]
        secondary = TOPICS[topics[1]] if len(topics) > 1 else None
        if fixed_title is not None and fixed_description is not None:
            title, description = fixed_title, fixed_description
        else:
            for _attempt in range(1000):
                title = _base_title(rng, vocab)
                if clickbait[i]:
                    title = _clickbait_title(rng, title)
                if title.casefold() not in seen_titles:
                    break
            else:  # pragma: no cover - the vocabularies are sized well above the topic counts
                raise RuntimeError(f"title vocabulary of topic {topics[0]!r} exhausted")
            seen_titles.add(title.casefold())
            description = _description(rng, vocab, secondary, bool(clickbait[i]))
        rows.append(
            {
                "item_id": f"i{i + 1:05d}",
                "title": title,
                "description": description,
                "topics": "|".join(topics),
                "quality": f"{quality[i]:.4f}",
                "appeal": f"{appeal[i]:.4f}",
                "popularity": f"{popularity[i]:.6g}",
            }
        )
    return rows


# (name, liked, avoided): hand-picked so that every topic is liked by at least two personas.
PERSONA_SPECS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("space_nerd", ("hard_scifi", "space_documentaries"), ("romance",)),
    ("stargazer", ("space_documentaries", "nature_wildlife"), ("horror",)),
    ("hopeless_romantic", ("romance", "comedy"), ("horror", "true_crime")),
    ("crime_buff", ("true_crime", "history"), ("romance",)),
    ("home_cook", ("cooking", "gardening"), ("video_games",)),
    ("foodie_traveller", ("cooking", "travel"), ("horror",)),
    ("history_buff", ("history", "travel"), ("video_games",)),
    ("jazz_cat", ("jazz", "history"), ("football",)),
    ("concert_goer", ("classical_music", "jazz"), ("horror",)),
    ("football_fan", ("football", "fitness"), ("classical_music",)),
    ("armchair_pundit", ("football", "comedy"), ("gardening",)),
    ("gym_regular", ("fitness", "technology"), ("horror",)),
    ("money_minded", ("personal_finance", "technology"), ("romance",)),
    ("frugal_parent", ("personal_finance", "parenting"), ("horror",)),
    ("backpacker", ("travel", "nature_wildlife"), ("video_games",)),
    ("green_thumb", ("gardening", "nature_wildlife"), ("true_crime",)),
    ("horror_hound", ("horror", "true_crime"), ("romance",)),
    ("dark_fantasy_reader", ("horror", "fantasy"), ("personal_finance",)),
    ("stand_up_fan", ("comedy",), ("true_crime",)),
    ("gamer", ("video_games", "fantasy"), ("gardening",)),
    ("retro_gamer", ("video_games", "technology"), ("romance",)),
    ("new_parent", ("parenting", "cooking"), ("horror",)),
    ("wildlife_watcher", ("nature_wildlife",), ("horror", "video_games")),
    ("tech_enthusiast", ("technology", "hard_scifi"), ("romance",)),
    ("gadget_reviewer", ("technology", "video_games"), ()),
    ("epic_fantasy_fan", ("fantasy", "hard_scifi"), ("true_crime",)),
    ("bookworm", ("fantasy", "romance", "history"), ("football",)),
    ("weekend_chef", ("cooking", "jazz"), ()),
    ("marathon_runner", ("fitness", "travel"), ("video_games",)),
    ("early_retiree", ("personal_finance", "travel", "gardening"), ("horror",)),
    ("amateur_astronomer", ("space_documentaries", "technology"), ()),
    ("cosy_evenings", ("romance", "cooking", "classical_music"), ("horror",)),
    ("film_buff", ("horror", "comedy", "hard_scifi"), ()),
    ("podcast_commuter", ("true_crime", "personal_finance", "comedy"), ()),
    ("outdoor_family", ("parenting", "nature_wildlife", "travel"), ("horror",)),
    ("music_lover", ("jazz", "classical_music"), ("video_games",)),
    ("sports_and_stats", ("football", "technology"), ("romance",)),
    ("mindful_mover", ("fitness", "gardening"), ("true_crime",)),
    ("curious_generalist", ("history", "technology", "nature_wildlife"), ()),
    ("teen_gamer", ("video_games", "comedy", "horror"), ("classical_music",)),
    ("grandparent", ("gardening", "classical_music", "history"), ("video_games",)),
    ("scifi_romantic", ("hard_scifi", "romance"), ("true_crime",)),
    ("night_owl", ("horror", "jazz"), ()),
    ("budget_backpacker", ("travel", "personal_finance"), ("fitness",)),
    ("sofa_explorer", ("space_documentaries", "history"), ("fitness",)),
)


def _join_words(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _persona_text(rng: np.random.Generator, liked: Sequence[str], avoided: Sequence[str]) -> str:
    labels = [TOPICS[t].label for t in liked]
    taste = _pick(rng, TOPICS[liked[0]].tastes)
    avoid = _join_words([TOPICS[t].label for t in avoided])
    style = int(rng.integers(4))
    if style == 0:
        text = f"Enjoys {_join_words(labels)}, especially {taste}"
        text += f"; avoids {avoid}." if avoid else "."
    elif style == 1:
        text = f"I love {_join_words(labels)}, mostly {taste}."
        if avoid:
            text += f" I'm not into {avoid}."
    elif style == 2:
        text = f"A fan of {_join_words(labels)} who always goes for {taste}."
        if avoid:
            text += f" Tends to skip {avoid}."
    else:
        text = f"My evenings are for {_join_words(labels)}: {taste}."
        if avoid:
            text += f" Please, no {avoid}."
    return text


def _onboarding(rng: np.random.Generator, liked: Sequence[str], partial: bool) -> str:
    words = [TOPICS[t].casual for t in liked]
    if partial:
        words = [_pick(rng, words)]
    joined = _join_words(words)
    templates = ("I like {w}", "into {w}", "{w} mostly", "big fan of {w}", "I'm here for {w}")
    return _pick(rng, templates).format(w=joined)


def generate_persona_rows(seed: int = DEFAULT_SEED) -> list[dict[str, str]]:
    """Generate the default personas as CSV-ready rows of strings.

    About a third of the personas that like several topics get a deliberately partial
    onboarding text naming only one of them: a cold-start user rarely states every interest.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    rows: list[dict[str, str]] = []
    for name, liked, avoided in PERSONA_SPECS:
        partial = len(liked) > 1 and rng.random() < 0.35
        rows.append(
            {
                "name": name,
                "text": _persona_text(rng, liked, avoided),
                "liked": "|".join(liked),
                "avoided": "|".join(avoided),
                "onboarding": _onboarding(rng, liked, partial),
            }
        )
    return rows


def _to_csv(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def render_catalog_csv(seed: int = DEFAULT_SEED, n_items: int = DEFAULT_N_ITEMS) -> str:
    """The default catalog as CSV text, exactly as shipped in ``envs/data/catalog.csv``."""
    return _to_csv(generate_catalog_rows(seed, n_items), CATALOG_COLUMNS)


def render_personas_csv(seed: int = DEFAULT_SEED) -> str:
    """The default personas as CSV text, exactly as shipped in ``envs/data/personas.csv``."""
    return _to_csv(generate_persona_rows(seed), PERSONA_COLUMNS)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="" keeps "\n" on Windows too, so the bytes match everywhere.
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: write the catalog and persona CSV files."""
    parser = argparse.ArgumentParser(
        prog="python -m lmrecsim.envs.catalog_build",
        description="Regenerate the default item catalog and personas (deterministic).",
    )
    parser.add_argument("--out", type=Path, default=DATA_DIR / "catalog.csv")
    parser.add_argument("--personas-out", type=Path, default=DATA_DIR / "personas.csv")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n-items", type=int, default=DEFAULT_N_ITEMS)
    args = parser.parse_args(argv)
    _write(args.out, render_catalog_csv(args.seed, args.n_items))
    _write(args.personas_out, render_personas_csv(args.seed))
    print(f"wrote {args.out} and {args.personas_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
