"""Data for the synthetic universe: real taxa a user would type, and parts for Latin names.

``BACKBONE`` lists real taxa, one per line, indented by rank: ``RANK Name | authorship |
key``. A key is given where it is GBIF's backbone key (from the brief, from the recorded
responses in ``shared/gbif/api`` or well known); taxa without one get a stable generated
key. ``SYNONYM`` lines are synonyms of the species just above them.
"""

from __future__ import annotations

BACKBONE = """
KINGDOM Animalia | Linnaeus, 1758 | 1
 PHYLUM Arthropoda | von Siebold, 1848 | 54
  CLASS Insecta | Linnaeus, 1758 | 216
   ORDER Lepidoptera | Linnaeus, 1758 | 797
    FAMILY Nymphalidae | Rafinesque, 1815 | 7017
     GENUS Vanessa | Fabricius, 1807 |
      SPECIES Vanessa atalanta | (Linnaeus, 1758) | 1898286
      SPECIES Vanessa cardui | (Linnaeus, 1758) |
     GENUS Aglais | Dalman, 1816 |
      SPECIES Aglais io | (Linnaeus, 1758) |
       SYNONYM Inachis io | (Linnaeus, 1758) |
      SPECIES Aglais urticae | (Linnaeus, 1758) |
     GENUS Polygonia | Hübner, 1819 |
      SPECIES Polygonia c-album | (Linnaeus, 1758) |
     GENUS Pararge | Hübner, 1819 |
      SPECIES Pararge aegeria | (Linnaeus, 1758) |
     GENUS Maniola | Schrank, 1801 |
      SPECIES Maniola jurtina | (Linnaeus, 1758) |
     GENUS Danaus | Kluk, 1780 |
      SPECIES Danaus plexippus | (Linnaeus, 1758) |
    FAMILY Pieridae | Swainson, 1820 |
     GENUS Pieris | Schrank, 1801 |
      SPECIES Pieris rapae | (Linnaeus, 1758) | 1920506
      SPECIES Pieris brassicae | (Linnaeus, 1758) |
      SPECIES Pieris napi | (Linnaeus, 1758) |
     GENUS Gonepteryx | Leach, 1815 |
      SPECIES Gonepteryx rhamni | (Linnaeus, 1758) |
     GENUS Anthocharis | Boisduval, Rambur & Graslin, 1833 |
      SPECIES Anthocharis cardamines | (Linnaeus, 1758) |
    FAMILY Papilionidae | Latreille, 1802 |
     GENUS Papilio | Linnaeus, 1758 |
      SPECIES Papilio machaon | Linnaeus, 1758 |
     GENUS Iphiclides | Hübner, 1819 |
      SPECIES Iphiclides podalirius | (Linnaeus, 1758) |
    FAMILY Lycaenidae | Leach, 1815 |
     GENUS Polyommatus | Latreille, 1804 |
      SPECIES Polyommatus icarus | (Rottemburg, 1775) |
     GENUS Lycaena | Fabricius, 1807 |
      SPECIES Lycaena phlaeas | (Linnaeus, 1761) |
    FAMILY Sphingidae | Latreille, 1802 |
     GENUS Macroglossum | Scopoli, 1777 |
      SPECIES Macroglossum stellatarum | (Linnaeus, 1758) |
   ORDER Coleoptera | Linnaeus, 1758 | 1470
    FAMILY Coccinellidae | Latreille, 1807 |
     GENUS Coccinella | Linnaeus, 1758 |
      SPECIES Coccinella septempunctata | Linnaeus, 1758 |
     GENUS Harmonia | Mulsant, 1850 |
      SPECIES Harmonia axyridis | (Pallas, 1773) |
    FAMILY Curculionidae | Latreille, 1802 | 4239
     GENUS Polydrusus | Germar, 1817 | 1176427
      SPECIES Polydrusus planifrons | Gyllenhal, 1834 | 7972617
   ORDER Hymenoptera | Linnaeus, 1758 | 1457
    FAMILY Apidae | Latreille, 1802 |
     GENUS Apis | Linnaeus, 1758 |
      SPECIES Apis mellifera | Linnaeus, 1758 | 1341976
     GENUS Bombus | Latreille, 1802 |
      SPECIES Bombus terrestris | (Linnaeus, 1758) |
      SPECIES Bombus pascuorum | (Scopoli, 1763) |
   ORDER Odonata | Fabricius, 1793 | 789
    FAMILY Libellulidae | Leach, 1815 |
     GENUS Sympetrum | Newman, 1833 |
      SPECIES Sympetrum striolatum | (Charpentier, 1840) |
 PHYLUM Chordata | Haeckel, 1874 | 44
  CLASS Aves | Linnaeus, 1758 | 212
   ORDER Passeriformes | Linnaeus, 1758 | 729
    FAMILY Passeridae | Rafinesque, 1815 |
     GENUS Passer | Brisson, 1760 |
      SPECIES Passer domesticus | (Linnaeus, 1758) | 5231190
      SPECIES Passer montanus | (Linnaeus, 1758) |
    FAMILY Paridae | Vigors, 1825 |
     GENUS Parus | Linnaeus, 1758 |
      SPECIES Parus major | Linnaeus, 1758 | 9705453
     GENUS Cyanistes | Kaup, 1829 |
      SPECIES Cyanistes caeruleus | (Linnaeus, 1758) |
    FAMILY Turdidae | Rafinesque, 1815 |
     GENUS Turdus | Linnaeus, 1758 |
      SPECIES Turdus merula | Linnaeus, 1758 |
      SPECIES Turdus philomelos | C.L.Brehm, 1831 |
    FAMILY Muscicapidae | Fleming, 1822 |
     GENUS Erithacus | Cuvier, 1800 |
      SPECIES Erithacus rubecula | (Linnaeus, 1758) |
    FAMILY Corvidae | Leach, 1820 |
     GENUS Pica | Brisson, 1760 |
      SPECIES Pica pica | (Linnaeus, 1758) |
   ORDER Accipitriformes | Vieillot, 1816 |
    FAMILY Accipitridae | Vigors, 1824 |
     GENUS Buteo | Lacépède, 1799 |
      SPECIES Buteo buteo | (Linnaeus, 1758) |
   ORDER Anseriformes | Wagler, 1831 |
    FAMILY Anatidae | Leach, 1820 |
     GENUS Anas | Linnaeus, 1758 |
      SPECIES Anas platyrhynchos | Linnaeus, 1758 |
  CLASS Amphibia | Linnaeus, 1758 | 131
   ORDER Caudata | Scopoli, 1777 | 953
    FAMILY Plethodontidae | Gray, 1850 | 6748
     GENUS Batrachoseps | Bonaparte, 1839 | 2431747
      SPECIES Batrachoseps luciae | Jockusch, Yanev & Wake, 2001 | 2431762
KINGDOM Plantae | Haeckel, 1866 | 6
 PHYLUM Tracheophyta | Sinnott ex Cavalier-Smith, 1998 | 7707728
  CLASS Magnoliopsida | Brongn. | 220
   ORDER Asterales | Link | 414
    FAMILY Asteraceae | Bercht. & J.Presl | 3065
     GENUS Helianthus | L. | 3119134
      SPECIES Helianthus annuus | L. | 9206251
      SPECIES Helianthus tuberosus | L. |
     GENUS Bellis | L. |
      SPECIES Bellis perennis | L. |
     GENUS Taraxacum | F.H.Wigg. |
      SPECIES Taraxacum officinale | F.H.Wigg. |
     GENUS Leucanthemum | Mill. |
      SPECIES Leucanthemum vulgare | Lam. |
   ORDER Lamiales | Bromhead | 408
    FAMILY Lamiaceae | Martinov | 2497
     GENUS Pseudodictamnus | Fabr. | 5428512
      SPECIES Pseudodictamnus acetabulosus | (L.) Salmaki & Siadati | 10846508
       SYNONYM Ballota acetabulosa | (L.) Benth. | 3883382
     GENUS Lavandula | L. |
      SPECIES Lavandula angustifolia | Mill. |
     GENUS Salvia | L. |
      SPECIES Salvia pratensis | L. |
   ORDER Rosales | Bercht. & J.Presl |
    FAMILY Rosaceae | Juss. |
     GENUS Rosa | L. |
      SPECIES Rosa canina | L. |
     GENUS Crataegus | L. |
      SPECIES Crataegus monogyna | Jacq. |
   ORDER Fabales | Bromhead |
    FAMILY Fabaceae | Lindl. |
     GENUS Trifolium | L. |
      SPECIES Trifolium pratense | L. |
  CLASS Liliopsida | Batsch |
   ORDER Asparagales | Link |
    FAMILY Orchidaceae | Juss. |
     GENUS Ophrys | L. |
      SPECIES Ophrys apifera | Huds. |
  CLASS Pinopsida | Burnett |
   ORDER Pinales | Gorozh. |
    FAMILY Pinaceae | Spreng. ex F.Rudolphi |
     GENUS Pinus | L. |
      SPECIES Pinus sylvestris | L. |
 PHYLUM Marchantiophyta | Stotler & Crand.-Stotl. | 9
  CLASS Jungermanniopsida | Stotler & Crand.-Stotl. | 126
   ORDER Jungermanniales | H.Klinggr. | 381
    FAMILY Anastrophyllaceae | L.Söderstr. & al. | 2292
     GENUS Sphenolobus | (Lindb.) Berggr. | 2689420
      SPECIES Sphenolobus minutus | (Schreb. ex Cranz) Berggr. | 2689422
       SYNONYM Anastrophyllum minutum | (Schreb. ex Cranz) R.M.Schust. | 4277323
KINGDOM Fungi | R.T.Moore | 5
 PHYLUM Basidiomycota | R.T.Moore | 34
  CLASS Agaricomycetes | Doweld |
   ORDER Agaricales | Underw. |
    FAMILY Amanitaceae | E.-J.Gilbert |
     GENUS Amanita | Pers. |
      SPECIES Amanita muscaria | (L.) Lam. |
      SPECIES Amanita phalloides | (Vaill. ex Fr.) Link |
    FAMILY Agaricaceae | Chevall. |
     GENUS Agaricus | L. |
      SPECIES Agaricus campestris | L. |
   ORDER Boletales | E.-J.Gilbert |
    FAMILY Boletaceae | Chevall. |
     GENUS Boletus | L. |
      SPECIES Boletus edulis | Bull. |
   ORDER Polyporales | Gäum. |
    FAMILY Polyporaceae | Fr. ex Corda |
     GENUS Trametes | Fr. |
      SPECIES Trametes versicolor | (L.) Lloyd |
 PHYLUM Ascomycota | Caval.-Sm. | 95
  CLASS Lecanoromycetes | O.E.Erikss. & Winka |
   ORDER Teloschistales | D.Hawksw. & O.E.Erikss. |
    FAMILY Teloschistaceae | Zahlbr. |
     GENUS Xanthoria | (Fr.) Th.Fr. |
      SPECIES Xanthoria parietina | (L.) Th.Fr. |
  CLASS Pezizomycetes | O.E.Erikss. & Winka |
   ORDER Pezizales | J.Schröt. |
    FAMILY Morchellaceae | Rchb. |
     GENUS Morchella | Dill. ex Pers. |
      SPECIES Morchella esculenta | (L.) Pers. |
"""

# Parts of generated genus names and epithets (Latin-looking, not real taxa).
GENUS_STEMS = (
    "Acro Aetho Agro Allo Ambly Amphi Antho Argo Arthro Astro Auro Bathy Brachy Calli "
    "Carpo Cephalo Chloro Chryso Cyclo Dendro Dicho Dolicho Erythro Eu Glauco Gymno Helio "
    "Hetero Hydro Lepto Leuco Litho Macro Mega Melano Meso Micro Myco Neo Ortho Pachy "
    "Para Phyllo Platy Poly Pseudo Rhodo Sclero Steno Tachy Thalasso Trachy Xantho Zygo"
).split()
GENUS_ROOTS = (
    "carp cerc chaet cnem coryn derm gnath lob mer morph nem pter phil phor rhin scel "
    "sperm stom thrix tom typh"
).split()
GENUS_ENDINGS = ("us", "a", "ia", "ella", "opsis", "odes", "ium", "ina", "ites", "ula")
EPITHETS = (
    "alba albida alpina arvensis aurea borealis caerulea campestris communis cordata "
    "crassa elegans flava glabra gracilis grandis hirsuta lutea major maritima minor "
    "montana nigra nitida obscura occidentalis orientalis palustris parva pratensis "
    "pulchra pusilla rubra rufa rustica saxatilis silvatica splendens sylvestris tenuis "
    "tristis variabilis velutina vernalis viridis vulgaris"
).split()
AUTHORS = (
    "Linnaeus|Fabricius|Latreille|Meigen|Walker|Kirby|Say|Schiffermüller|Hübner|Pallas|"
    "Scopoli|Boheman|Lamarck|Cuvier|Gray|Bonaparte|Pers.|Fr.|L.|Mill.|DC.|Willd.|Sm."
).split("|")

# Countries where occurrences fall, Europe-heavy as GBIF's media-bearing records are:
# code|name|weight|latitude|longitude|spread in degrees|continent|GBIF region|ISO3
COUNTRIES = """
FR|France|12|46.5|2.5|3|EUROPE|EUROPE|FRA
DE|Germany|12|51|10|2.5|EUROPE|EUROPE|DEU
GB|United Kingdom of Great Britain and Northern Ireland|12|53|-1.5|2|EUROPE|EUROPE|GBR
NL|Netherlands|8|52.2|5.5|0.8|EUROPE|EUROPE|NLD
BE|Belgium|5|50.6|4.5|0.6|EUROPE|EUROPE|BEL
ES|Spain|6|40|-3.5|3|EUROPE|EUROPE|ESP
IT|Italy|5|42.8|12.5|2.5|EUROPE|EUROPE|ITA
SE|Sweden|6|60|15|3|EUROPE|EUROPE|SWE
DK|Denmark|4|56|9.5|1|EUROPE|EUROPE|DNK
CH|Switzerland|2|46.8|8.2|0.5|EUROPE|EUROPE|CHE
AT|Austria|2|47.5|14|0.8|EUROPE|EUROPE|AUT
PL|Poland|3|52|19|2|EUROPE|EUROPE|POL
NO|Norway|3|61|9|3|EUROPE|EUROPE|NOR
FI|Finland|3|63|26|3|EUROPE|EUROPE|FIN
IE|Ireland|1.5|53.3|-8|1|EUROPE|EUROPE|IRL
PT|Portugal|1.5|39.6|-8|1|EUROPE|EUROPE|PRT
CZ|Czechia|1.5|49.8|15.5|0.8|EUROPE|EUROPE|CZE
US|United States of America|8|39|-98|8|NORTH_AMERICA|NORTH_AMERICA|USA
CA|Canada|3|52|-100|6|NORTH_AMERICA|NORTH_AMERICA|CAN
MX|Mexico|1|23|-102|5|NORTH_AMERICA|LATIN_AMERICA|MEX
CR|Costa Rica|0.5|9.9|-84|0.8|NORTH_AMERICA|LATIN_AMERICA|CRI
BR|Brazil|1.5|-12|-52|8|SOUTH_AMERICA|LATIN_AMERICA|BRA
AU|Australia|2|-27|135|8|OCEANIA|OCEANIA|AUS
NZ|New Zealand|1|-41|173|3|OCEANIA|OCEANIA|NZL
ZA|South Africa|1|-29|25|4|AFRICA|AFRICA|ZAF
JP|Japan|1|36|138|3|ASIA|ASIA|JPN
IN|India|0.7|22|79|6|ASIA|ASIA|IND
"""

# Given and family names for recorders and photographers (synthetic people).
GIVEN_NAMES = (
    "Anna Ben Clara David Elena Femke Gustav Hanna Ingrid Jonas Karin Lars Marie Nils "
    "Olga Pierre Quentin Rosa Sven Tomas Ulla Vera Willem Ximena Yusuf Zofia"
).split()
FAMILY_NAMES = (
    "Andersson Bakker Costa Dubois Eriksen Fischer García Hansen Ito Jansen Kowalski "
    "Larsen Müller Novak Olsen Peeters Quist Rossi Schmidt Tanaka Urban Vermeulen "
    "Weber Xu Young Zimmermann"
).split()
