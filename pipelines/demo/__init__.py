"""The demo study: a synthetic cohort written in the formats of real devices and laboratory
interfaces (``generate``), HL7 v2 and FHIR messages included (``lab_messages``)."""
