"""A real example incident for `hb-medic notify test`: the seed incident, as the
legacy generation of hummingbot-api printed it."""

from __future__ import annotations

from agent.notify.message import Message, code

EXCERPT = """\
  File "/hummingbot-api/services/docker_service.py", line 182, in create_hummingbot_instance
    shutil.copytree(source_credentials_dir, destination_credentials_dir)
  File "/opt/conda/envs/hummingbot-api/lib/python3.12/shutil.py", line 586, in copytree
    with os.scandir(src) as itr:
         ^^^^^^^^^^^^^^^
FileNotFoundError: [Errno 2] No such file or directory: 'bots/credentials/client_sharp'"""


PROFILE = code("client_sharp")  # values from logs are shown as code, as in a real message


def sample_message() -> Message:
    return Message(
        incident="test0000", step="resolved", severity="critical", rule="credentials-profile-missing",
        container="hummingbot-api",
        title="[CRITICAL] Fixed: Deploy failed: credentials profile client_sharp did not exist (TEST)",
        summary=f"hummingbot-api could not deploy because bots/credentials/{PROFILE} did not exist. hb-medic"
                " creates the profile through add-account and retries the deploy."
                " (This is a test message from hb-medic notify test.)",
        excerpt=EXCERPT,
        actions=[code("ensure_account(profile='client_sharp'): ok added profile client_sharp"),
                 code("retry_deploy(route='deploy-v2-script'): ok deployed sharp-bot; its container is"
                      " running")],
        outcome="fixed in 0.2 s",
        next_steps=f"The new profile {PROFILE} has no exchange keys: the bot runs but cannot trade until you"
                   f" add them, e.g. POST /accounts/add-credential/{PROFILE}/<connector>.")
