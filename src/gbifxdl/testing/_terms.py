"""GBIF's Darwin Core Archive column lists, in GBIF's order.

Transcribed from GBIF's ``GET /v1/occurrence/download/describe/dwca`` (2025): the interpreted
``occurrence.txt`` core, ``verbatim.txt`` and ``multimedia.txt``. Each entry is
``prefix:name``; a trailing ``;`` marks an array column (``delimitedBy=";"`` in meta.xml).
"""

from __future__ import annotations

NAMESPACES: dict[str, str] = {
    "gbif": "http://rs.gbif.org/terms/1.0/",
    "dc": "http://purl.org/dc/terms/",
    "dwc": "http://rs.tdwg.org/dwc/terms/",
    "gadm": "http://rs.gbif.org/terms/gadm/3.0/",
    "iucn": "http://iucn.org/terms/",
}

# occurrence.txt: the interpreted core (226 columns)
_INTERPRETED = """
gbif:gbifID dc:accessRights dc:bibliographicCitation dc:language dc:license dc:modified
dc:publisher dc:references dc:rightsHolder dc:type dwc:institutionID dwc:collectionID
dwc:datasetID; dwc:institutionCode dwc:collectionCode dwc:datasetName;
dwc:ownerInstitutionCode dwc:basisOfRecord dwc:informationWithheld
dwc:dataGeneralizations dwc:dynamicProperties dwc:occurrenceID dwc:catalogNumber
dwc:recordNumber dwc:recordedBy; dwc:recordedByID; dwc:individualCount
dwc:organismQuantity dwc:organismQuantityType dwc:sex dwc:lifeStage
dwc:reproductiveCondition dwc:caste dwc:behavior dwc:vitality dwc:establishmentMeans
dwc:degreeOfEstablishment dwc:pathway dwc:georeferenceVerificationStatus
dwc:occurrenceStatus dwc:preparations; dwc:disposition dwc:associatedOccurrences
dwc:associatedReferences dwc:associatedSequences; dwc:associatedTaxa
dwc:otherCatalogNumbers; dwc:occurrenceRemarks dwc:organismID dwc:organismName
dwc:organismScope dwc:associatedOrganisms dwc:previousIdentifications
dwc:organismRemarks dwc:materialEntityID dwc:materialEntityRemarks dwc:verbatimLabel
dwc:materialSampleID dwc:eventID dwc:parentEventID dwc:eventType dwc:fieldNumber
dwc:eventDate dwc:eventTime dwc:startDayOfYear dwc:endDayOfYear dwc:year dwc:month
dwc:day dwc:verbatimEventDate dwc:habitat dwc:samplingProtocol; dwc:sampleSizeValue
dwc:sampleSizeUnit dwc:samplingEffort dwc:fieldNotes dwc:eventRemarks dwc:locationID
dwc:higherGeographyID dwc:higherGeography; dwc:continent dwc:waterBody dwc:islandGroup
dwc:island dwc:countryCode dwc:stateProvince dwc:county dwc:municipality dwc:locality
dwc:verbatimLocality dwc:verbatimElevation dwc:verticalDatum dwc:verbatimDepth
dwc:minimumDistanceAboveSurfaceInMeters dwc:maximumDistanceAboveSurfaceInMeters
dwc:locationAccordingTo dwc:locationRemarks dwc:decimalLatitude dwc:decimalLongitude
dwc:coordinateUncertaintyInMeters dwc:coordinatePrecision dwc:pointRadiusSpatialFit
dwc:verbatimCoordinateSystem dwc:verbatimSRS dwc:footprintWKT dwc:footprintSRS
dwc:footprintSpatialFit dwc:georeferencedBy; dwc:georeferencedDate
dwc:georeferenceProtocol dwc:georeferenceSources dwc:georeferenceRemarks
dwc:geologicalContextID dwc:earliestEonOrLowestEonothem dwc:latestEonOrHighestEonothem
dwc:earliestEraOrLowestErathem dwc:latestEraOrHighestErathem
dwc:earliestPeriodOrLowestSystem dwc:latestPeriodOrHighestSystem
dwc:earliestEpochOrLowestSeries dwc:latestEpochOrHighestSeries
dwc:earliestAgeOrLowestStage dwc:latestAgeOrHighestStage dwc:lowestBiostratigraphicZone
dwc:highestBiostratigraphicZone dwc:lithostratigraphicTerms dwc:group dwc:formation
dwc:member dwc:bed dwc:identificationID dwc:verbatimIdentification
dwc:identificationQualifier dwc:typeStatus dwc:identifiedBy; dwc:identifiedByID;
dwc:dateIdentified dwc:identificationReferences dwc:identificationVerificationStatus
dwc:identificationRemarks dwc:taxonID dwc:scientificNameID dwc:acceptedNameUsageID
dwc:parentNameUsageID dwc:originalNameUsageID dwc:nameAccordingToID
dwc:namePublishedInID dwc:taxonConceptID dwc:scientificName dwc:acceptedNameUsage
dwc:parentNameUsage dwc:originalNameUsage dwc:nameAccordingTo dwc:namePublishedIn
dwc:namePublishedInYear dwc:higherClassification dwc:kingdom dwc:phylum dwc:class
dwc:order dwc:superfamily dwc:family dwc:subfamily dwc:tribe dwc:subtribe dwc:genus
dwc:genericName dwc:subgenus dwc:infragenericEpithet dwc:specificEpithet
dwc:infraspecificEpithet dwc:cultivarEpithet dwc:taxonRank dwc:verbatimTaxonRank
dwc:vernacularName dwc:nomenclaturalCode dwc:taxonomicStatus dwc:nomenclaturalStatus
dwc:taxonRemarks gbif:datasetKey gbif:publishingCountry gbif:lastInterpreted
gbif:elevation gbif:elevationAccuracy gbif:depth gbif:depthAccuracy
gbif:distanceFromCentroidInMeters gbif:issue; gbif:taxonomicIssue gbif:nonTaxonomicIssue
gbif:mediaType; gbif:hasCoordinate gbif:hasGeospatialIssues gbif:taxonKey
gbif:acceptedTaxonKey gbif:kingdomKey gbif:phylumKey gbif:classKey gbif:orderKey
gbif:familyKey gbif:genusKey gbif:subgenusKey gbif:speciesKey gbif:species
gbif:acceptedScientificName gbif:verbatimScientificName gbif:typifiedName gbif:protocol
gbif:lastParsed gbif:lastCrawled gbif:isInvasive gbif:repatriated
gbif:relativeOrganismQuantity gbif:projectId; gbif:isSequenced gbif:gbifRegion
gbif:publishedByGbifRegion gadm:level0Gid gadm:level0Name gadm:level1Gid gadm:level1Name
gadm:level2Gid gadm:level2Name gadm:level3Gid gadm:level3Name iucn:iucnRedListCategory
"""

# verbatim.txt: the values as published (190 columns)
_VERBATIM = """
gbif:gbifID dc:accessRights dc:bibliographicCitation dc:language dc:license dc:modified
dc:publisher dc:references dc:rightsHolder dc:type dwc:institutionID dwc:collectionID
dwc:datasetID dwc:institutionCode dwc:collectionCode dwc:datasetName
dwc:ownerInstitutionCode dwc:basisOfRecord dwc:informationWithheld
dwc:dataGeneralizations dwc:dynamicProperties dwc:occurrenceID dwc:catalogNumber
dwc:recordNumber dwc:recordedBy dwc:recordedByID dwc:individualCount
dwc:organismQuantity dwc:organismQuantityType dwc:sex dwc:lifeStage
dwc:reproductiveCondition dwc:caste dwc:behavior dwc:vitality dwc:establishmentMeans
dwc:degreeOfEstablishment dwc:pathway dwc:georeferenceVerificationStatus
dwc:occurrenceStatus dwc:preparations dwc:disposition dwc:associatedMedia
dwc:associatedOccurrences dwc:associatedReferences dwc:associatedSequences
dwc:associatedTaxa dwc:otherCatalogNumbers dwc:occurrenceRemarks dwc:organismID
dwc:organismName dwc:organismScope dwc:associatedOrganisms dwc:previousIdentifications
dwc:organismRemarks dwc:materialEntityID dwc:materialEntityRemarks dwc:verbatimLabel
dwc:materialSampleID dwc:eventID dwc:parentEventID dwc:eventType dwc:fieldNumber
dwc:eventDate dwc:eventTime dwc:startDayOfYear dwc:endDayOfYear dwc:year dwc:month
dwc:day dwc:verbatimEventDate dwc:habitat dwc:samplingProtocol dwc:sampleSizeValue
dwc:sampleSizeUnit dwc:samplingEffort dwc:fieldNotes dwc:eventRemarks dwc:locationID
dwc:higherGeographyID dwc:higherGeography dwc:continent dwc:waterBody dwc:islandGroup
dwc:island dwc:country dwc:countryCode dwc:stateProvince dwc:county dwc:municipality
dwc:locality dwc:verbatimLocality dwc:minimumElevationInMeters
dwc:maximumElevationInMeters dwc:verbatimElevation dwc:verticalDatum
dwc:minimumDepthInMeters dwc:maximumDepthInMeters dwc:verbatimDepth
dwc:minimumDistanceAboveSurfaceInMeters dwc:maximumDistanceAboveSurfaceInMeters
dwc:locationAccordingTo dwc:locationRemarks dwc:decimalLatitude dwc:decimalLongitude
dwc:geodeticDatum dwc:coordinateUncertaintyInMeters dwc:coordinatePrecision
dwc:pointRadiusSpatialFit dwc:verbatimCoordinates dwc:verbatimLatitude
dwc:verbatimLongitude dwc:verbatimCoordinateSystem dwc:verbatimSRS dwc:footprintWKT
dwc:footprintSRS dwc:footprintSpatialFit dwc:georeferencedBy dwc:georeferencedDate
dwc:georeferenceProtocol dwc:georeferenceSources dwc:georeferenceRemarks
dwc:geologicalContextID dwc:earliestEonOrLowestEonothem dwc:latestEonOrHighestEonothem
dwc:earliestEraOrLowestErathem dwc:latestEraOrHighestErathem
dwc:earliestPeriodOrLowestSystem dwc:latestPeriodOrHighestSystem
dwc:earliestEpochOrLowestSeries dwc:latestEpochOrHighestSeries
dwc:earliestAgeOrLowestStage dwc:latestAgeOrHighestStage dwc:lowestBiostratigraphicZone
dwc:highestBiostratigraphicZone dwc:lithostratigraphicTerms dwc:group dwc:formation
dwc:member dwc:bed dwc:identificationID dwc:verbatimIdentification
dwc:identificationQualifier dwc:typeStatus dwc:identifiedBy dwc:identifiedByID
dwc:dateIdentified dwc:identificationReferences dwc:identificationVerificationStatus
dwc:identificationRemarks dwc:taxonID dwc:scientificNameID dwc:acceptedNameUsageID
dwc:parentNameUsageID dwc:originalNameUsageID dwc:nameAccordingToID
dwc:namePublishedInID dwc:taxonConceptID dwc:scientificName dwc:acceptedNameUsage
dwc:parentNameUsage dwc:originalNameUsage dwc:nameAccordingTo dwc:namePublishedIn
dwc:namePublishedInYear dwc:higherClassification dwc:kingdom dwc:phylum dwc:class
dwc:order dwc:superfamily dwc:family dwc:subfamily dwc:tribe dwc:subtribe dwc:genus
dwc:genericName dwc:subgenus dwc:infragenericEpithet dwc:specificEpithet
dwc:infraspecificEpithet dwc:cultivarEpithet dwc:taxonRank dwc:verbatimTaxonRank
dwc:scientificNameAuthorship dwc:vernacularName dwc:nomenclaturalCode
dwc:taxonomicStatus dwc:nomenclaturalStatus dwc:taxonRemarks
"""

# multimedia.txt: one row per medium (15 columns)
_MULTIMEDIA = """
gbif:gbifID dc:type dc:format dc:identifier dc:references dc:title dc:description
dc:source dc:audience dc:created dc:creator dc:contributor dc:publisher dc:license
dc:rightsHolder
"""


def columns(block: str) -> tuple[tuple[str, str, bool], ...]:
    """Return ``(name, term URI, is_array)`` for each column of a block, in order."""
    result = []
    for token in block.split():
        is_array = token.endswith(";")
        prefix, name = token.rstrip(";").split(":", 1)
        result.append((name, NAMESPACES[prefix] + name, is_array))
    return tuple(result)


INTERPRETED = columns(_INTERPRETED)
VERBATIM = columns(_VERBATIM)
MULTIMEDIA = columns(_MULTIMEDIA)
