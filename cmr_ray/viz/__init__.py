"""Pictures of the data: `montage.show_study` draws one study's recognised series."""
