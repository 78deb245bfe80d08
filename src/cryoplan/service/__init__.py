"""The case review service (`cryoplan serve`): FastAPI pages and API over a SQLAlchemy database.

`app.create_app(settings)` builds the app; `settings.ServiceSettings` reads ``CRYOPLAN_*`` variables;
`store` holds every database read and write (with the audit trail); `auth` the users, sessions, tokens and
role checks; `uploads` the document checks; `jobs` the Dask jobs; `reports` the report and referral packet.
"""
