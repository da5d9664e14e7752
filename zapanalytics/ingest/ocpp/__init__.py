"""OCPP 1.6J: central system, spool loader, frame checks and charge-point simulator."""
