"""`python -m support.gemini_fake`: a fake Gemini for manual runs."""

from support.gemini_fake import main

main()
