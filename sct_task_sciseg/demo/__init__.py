"""The offline demo (``sciseg -demo``) and the synthetic T2w phantoms it segments."""
