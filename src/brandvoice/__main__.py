from brandvoice.bot.cli import app

app()
