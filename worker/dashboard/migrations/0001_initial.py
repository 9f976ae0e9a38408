from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Dashboard",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("view_dashboard", "Can view the tasks dashboard"),
                    ("act_dashboard", "Can retry, cancel, delete, pause and stop in the dashboard"),
                ],
            },
        ),
    ]
