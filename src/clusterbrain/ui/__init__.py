"""The web console (NiceGUI on the FastAPI app, served at ``/console``), in zh-CN and English."""
